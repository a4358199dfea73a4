"""The rollout flow: a blessed challenger earns traffic step by step, or is rolled back."""

from __future__ import annotations

from prefect import flow
from prefect.runtime import flow_run as current_run
from pydantic import BaseModel, Field

from prefect_mlops.rollout_gate import RolloutResult, StepEvidence
from prefect_mlops.settings import Settings
from tasks.recovery import recover_crashed_runs
from tasks.rollout import (
    approve_step,
    end_rollout,
    load_rollout_config,
    plan_rollout,
    promote_rollout,
    roll_back_rollout,
    run_step,
)


class RolloutParams(BaseModel):
    """Which challenger to roll out, under which pipeline config (its `rollout:` section)."""

    config_path: str = Field(
        default="configs/bikeshare.yaml", description="pipeline YAML, relative to the project"
    )
    version: str | None = Field(
        default=None, description="version to roll out (default: the `challenger` alias)"
    )
    reason: str = Field(default="manual", description="why this run started (e.g. an event id)")


@flow(
    name="rollout",
    description="Shadow, canary and A/B steps over live evidence, then promote or roll back.",
)
def rollout_flow(params: RolloutParams = RolloutParams()) -> RolloutResult:  # noqa: B008
    """Run the config's rollout steps against the champion; a breach, a timeout or a refused
    approval rolls back at once (the champion untouched), passing every step promotes."""
    settings = Settings()
    recover_crashed_runs(settings)
    config = load_rollout_config(params.config_path)
    run_id = str(current_run.get_id() or "none")
    plan = plan_rollout(config, params.version, params.config_path, run_id, params.reason)
    rollout, steps = config.rollout, list[StepEvidence]()
    for step in rollout.steps:
        if step.approval and not approve_step(
            plan, f"step **{step.label}**", rollout.timeout_of(step)
        ):
            return end_rollout(plan, steps, "rejected", f"step {step.label} was not approved")
        evidence = run_step.with_options(task_run_name=f"step {step.label}")(
            plan, config, step, settings
        )
        steps.append(evidence)
        if evidence.aborted:
            return end_rollout(plan, steps, "aborted", f"aborted during step {step.label}")
        if evidence.verdict == "breach":
            breaches = ", ".join(r.rule for r in evidence.breaches)
            return roll_back_rollout(plan, steps, f"step {step.label}: {breaches}", settings)
    promotion = "**the promotion to `champion`**"
    if rollout.approve_promotion and not approve_step(
        plan, promotion, rollout.step_timeout_seconds
    ):
        return end_rollout(plan, steps, "rejected", "the promotion was not approved")
    return promote_rollout(plan, steps, settings)
