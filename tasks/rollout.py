"""Rollout tasks: put a step's traffic split on, gate it over live evidence, roll back or promote.

Thin wrappers of `prefect_mlops.rollout` (the state in the registry) and
`prefect_mlops.rollout_gate` (evidence and decisions), adding the loop a step waits in, the
evidence artifacts, the events and the champion's lock.
"""

from __future__ import annotations

import time
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.events import emit_event
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run

from prefect_mlops import rollout_gate as gate
from prefect_mlops.config import PipelineConfig, RolloutStep, load_config
from prefect_mlops.monitoring.records import model_resource_id
from prefect_mlops.names import artifact_key
from prefect_mlops.registry import CHAMPION, promote_if_still_better, version_by_alias
from prefect_mlops.results import ModelVersionRef, PromotionDecision
from prefect_mlops.rollout import (
    CATCH_ALL_ROLLOUT,
    ROLLOUT_DEPLOYMENT_LABEL,
    RolloutState,
    clear_rollout,
    model_rollout_deployment,
    read_rollout,
    write_rollout,
)
from prefect_mlops.rollout_gate import RolloutPlan, RolloutResult, StepEvidence
from prefect_mlops.settings import Settings
from prefect_mlops.tracking import mlflow_client
from tasks.approval import PromotionApproval
from tasks.locks import champion_lock
from tasks.policies import IO_RETRIES
from tasks.routing import deployment_or_catch_all

CHALLENGER_REGISTERED = "mlops.model.challenger-registered"
ROLLOUT_ROLLED_BACK = "mlops.model.rollout-rolled-back"
ROLLOUT_PROMOTED = "mlops.model.rollout-promoted"
OUTCOME_TAG = "mlops.rollout_outcome"


def _resource(name: str, version: str) -> dict[str, str]:
    return {
        "prefect.resource.id": model_resource_id(name),
        "prefect.resource.name": name,
        "prefect.resource.role": "model",
        "mlops.model.version": version,
    }


@task(task_run_name="rollout config {path}")
def load_rollout_config(path: str) -> PipelineConfig:
    """The pipeline config and its `rollout:` section (no data or suite is read by a rollout)."""
    return load_config(path)


@task(task_run_name="hand {version.name} v{version.version} to a rollout")
def hand_to_rollout(
    version: ModelVersionRef, promotion: PromotionDecision, config_path: str, flow_run_id: str
) -> PromotionDecision:
    """A blessed challenger that would be promoted stays `challenger`: the event
    `mlops.model.challenger-registered` starts its rollout, addressed to the model's own
    `rollout/rollout-<model>` when that is deployed, else to prefect.yaml's `rollout/rollout`
    (one event, one rollout)."""
    roller = deployment_or_catch_all(model_rollout_deployment(version.name), CATCH_ALL_ROLLOUT)
    event = emit_event(
        event=CHALLENGER_REGISTERED,
        resource={**_resource(version.name, version.version), ROLLOUT_DEPLOYMENT_LABEL: roller},
        payload={
            "version": version.version,
            "config_path": config_path,
            "flow_run_id": flow_run_id,
        },
    )
    note = f" (event {event.id})" if event is not None else ""
    return PromotionDecision(
        promote=False,
        reason=f"{promotion.reason}; handed to a progressive rollout{note}: it stays "
        "challenger until its rollout promotes it",
    )


@task(**IO_RETRIES, task_run_name="plan rollout of {config.registered_model_name}")
def plan_rollout(
    config: PipelineConfig, version: str | None, config_path: str, flow_run_id: str, reason: str
) -> RolloutPlan:
    """The challenger against today's champion (refused when either is missing or they match)."""
    client = mlflow_client(Settings())
    name = config.registered_model_name
    return gate.plan_rollout(client, name, version, config_path, flow_run_id, reason)


def approve_step(plan: RolloutPlan, what: str, timeout_seconds: float) -> bool:
    """Pause the flow run until a person approves `what` (a step, the promotion); no answer in
    time rejects it.

    Called from the flow body, not a task: Prefect pauses flow runs, not task runs.
    """
    timeout = max(1, round(timeout_seconds))
    form = PromotionApproval.with_initial_data(
        description=(
            f"Start {what} of the rollout of **{plan.model_name} "
            f"v{plan.challenger_version}** (champion v{plan.champion_version})?"
        ),
        approve=False,
    )
    get_run_logger().info("waiting up to %ss for approval of %s", timeout, what)
    try:
        answer = pause_flow_run(wait_for_input=form, timeout=timeout, poll_interval=2)
    except FlowPauseTimeout:
        return False
    return bool(answer.approve)


@task(task_run_name="{step.mode} {step.share:.0%} of {plan.model_name} v{plan.challenger_version}")
def run_step(
    plan: RolloutPlan, config: PipelineConfig, step: RolloutStep, settings: Settings
) -> StepEvidence:
    """Put the step's traffic split on, hold it, and gate it over live evidence: it ends at the
    first breach, when it passes, when the rollout was aborted, or rolled back at its timeout."""
    rollout, client = config.rollout, mlflow_client(settings)
    state = RolloutState(
        version=plan.challenger_version,
        mode=step.mode,
        share=step.share,
        key=rollout.key,
        step=step.label,
        flow_run_id=plan.flow_run_id,
    )
    write_rollout(client, plan.model_name, state)
    started = time.time()
    baseline = gate.scrape_metrics(rollout.service_urls, service_token(settings))
    timeout = rollout.timeout_of(step)
    while True:
        time.sleep(rollout.poll_seconds)
        evidence = look_at_step(plan, config, step, baseline, started, settings)
        if not gate.still_ours(read_rollout(client, plan.model_name), plan):
            evidence = evidence.model_copy(update={"aborted": True})
            break
        if evidence.verdict != "waiting":
            break
        if time.time() - started >= timeout:
            evidence = gate.timed_out(evidence, timeout)
            break
    publish_step_evidence(evidence, settings)
    return evidence


def look_at_step(
    plan: RolloutPlan,
    config: PipelineConfig,
    step: RolloutStep,
    baseline: list[gate.MetricsScrape],
    started: float,
    settings: Settings,
) -> StepEvidence:
    """One look: the replicas' counters since the step began, the log's rows, the gate."""
    rollout = config.rollout
    scrape = gate.scrape_metrics(rollout.service_urls, service_token(settings))
    traffic = gate.traffic_since(baseline, scrape)
    log_dir = Path(rollout.log_dir) if rollout.log_dir else settings.prediction_log_dir
    arms = gate.read_arms(
        plan.model_name,
        step.mode,
        plan.champion_version,
        plan.challenger_version,
        started,
        rollout.log_url or settings.prediction_log_url,
        log_dir,
    )
    elapsed = time.time() - started
    return gate.judge_step(
        config, step, plan.champion_version, plan.challenger_version, traffic, arms, elapsed
    )


def publish_step_evidence(evidence: StepEvidence, settings: Settings) -> None:
    """One Markdown artifact per step, and the JSON `mlops rollout status` reads."""
    outcome = "aborted" if evidence.aborted else evidence.verdict
    gate.save_evidence(settings.local_root, evidence, outcome)
    create_markdown_artifact(
        markdown=gate.evidence_markdown(evidence, outcome),
        key=artifact_key("rollout", evidence.model_name, evidence.step),
        description=f"rollout step {evidence.step} of {evidence.model_name}: {outcome}",
    )


@task(
    **IO_RETRIES, task_run_name="roll back rollout of {plan.model_name} v{plan.challenger_version}"
)
def roll_back_rollout(
    plan: RolloutPlan, steps: list[StepEvidence], reason: str, settings: Settings
) -> RolloutResult:
    """All traffic back to the champion (only this run's rollout is cleared; the champion is
    never touched), the version tagged with why, an event and an artifact with the evidence."""
    client = mlflow_client(settings)
    if gate.still_ours(read_rollout(client, plan.model_name), plan):
        clear_rollout(client, plan.model_name)
    client.set_model_version_tag(
        plan.model_name, plan.challenger_version, OUTCOME_TAG, f"rolled back: {reason}"
    )
    champion = version_by_alias(client, plan.model_name, CHAMPION) or "-"
    last = steps[-1] if steps else None
    emit_event(
        event=ROLLOUT_ROLLED_BACK,
        resource=_resource(plan.model_name, plan.challenger_version),
        payload={
            "version": plan.challenger_version,
            "champion_version": champion,
            "step": last.step if last else "",
            "reason": reason,
            "breaches": [r.model_dump() for r in last.breaches] if last else [],
            "config_path": plan.config_path,
            "flow_run_id": plan.flow_run_id,
        },
    )
    result = RolloutResult(
        plan=plan, outcome="rolled back", reason=reason, steps=steps, champion_version=champion
    )
    publish_rollout_result(result)
    return result


@task(
    **IO_RETRIES,
    task_run_name="promote {plan.model_name} v{plan.challenger_version} (rollout passed)",
)
def promote_rollout(
    plan: RolloutPlan, steps: list[StepEvidence], settings: Settings
) -> RolloutResult:
    """Every step passed: the challenger becomes champion under the model's lock (the old one
    stays `previous-champion`), unless the champion moved during the rollout; then all traffic
    follows the champion alias again."""
    client = mlflow_client(settings)
    moved = promote_if_still_better(
        client,
        plan.model_name,
        plan.challenger_version,
        plan.champion_version,
        lambda current: False,  # a champion moved meanwhile was not the one this rollout beat
        champion_lock(settings),
    )
    if gate.still_ours(read_rollout(client, plan.model_name), plan):
        clear_rollout(client, plan.model_name)
    champion = version_by_alias(client, plan.model_name, CHAMPION) or "-"
    if not moved:
        reason = f"the champion moved to v{champion} during the rollout: not promoted"
        client.set_model_version_tag(plan.model_name, plan.challenger_version, OUTCOME_TAG, reason)
        result = RolloutResult(
            plan=plan, outcome="superseded", reason=reason, steps=steps, champion_version=champion
        )
        publish_rollout_result(result)
        return result
    reason = f"rollout passed steps {', '.join(s.step for s in steps)}"
    for tag in ("promotion_reason", OUTCOME_TAG):
        client.set_model_version_tag(plan.model_name, plan.challenger_version, tag, reason)
    emit_event(
        event=ROLLOUT_PROMOTED,
        resource=_resource(plan.model_name, plan.challenger_version),
        payload={
            "version": plan.challenger_version,
            "previous_champion": plan.champion_version,
            "config_path": plan.config_path,
            "flow_run_id": plan.flow_run_id,
        },
    )
    result = RolloutResult(
        plan=plan, outcome="promoted", reason=reason, steps=steps, champion_version=champion
    )
    publish_rollout_result(result)
    return result


@task(
    **IO_RETRIES,
    task_run_name="end rollout of {plan.model_name} v{plan.challenger_version} ({outcome})",
)
def end_rollout(
    plan: RolloutPlan, steps: list[StepEvidence], outcome: gate.Outcome, reason: str
) -> RolloutResult:
    """A rollout ended by a person (aborted, or an approval refused): nothing else changes."""
    client = mlflow_client(Settings())
    if gate.still_ours(read_rollout(client, plan.model_name), plan):
        clear_rollout(client, plan.model_name)
    champion = version_by_alias(client, plan.model_name, CHAMPION) or "-"
    client.set_model_version_tag(
        plan.model_name, plan.challenger_version, OUTCOME_TAG, f"{outcome}: {reason}"
    )
    result = RolloutResult(
        plan=plan, outcome=outcome, reason=reason, steps=steps, champion_version=champion
    )
    publish_rollout_result(result)
    return result


def publish_rollout_result(result: RolloutResult) -> None:
    """The rollout's outcome and each step's verdict as one Markdown artifact."""
    plan = result.plan
    lines = [
        f"# Rollout of {plan.model_name} v{plan.challenger_version}: {result.outcome}",
        "",
        f"{result.reason}. Champion now v{result.champion_version} (was "
        f"v{plan.champion_version}). Started by: {plan.reason}.",
        "",
        "| step | verdict | breaches |",
        "|---|---|---|",
    ]
    for step in result.steps:
        breaches = "; ".join(f"{r.rule}: {r.observed} ({r.detail})" for r in step.breaches)
        verdict = "aborted" if step.aborted else step.verdict
        lines.append(f"| {step.step} | {verdict} | {breaches.replace('|', '/') or '-'} |")
    create_markdown_artifact(
        markdown="\n".join(lines),
        key=artifact_key("rollout", plan.model_name),
        description=f"rollout of {plan.model_name} v{plan.challenger_version}: {result.outcome}",
    )


def service_token(settings: Settings) -> str | None:
    """The bearer token the services answer /metrics with (MLOPS_SERVE_TOKEN), if any."""
    return settings.serve_token.get_secret_value() if settings.serve_token else None
