"""Gate tasks: the model gate's decision and enforcement, visible as steps of the run."""

from __future__ import annotations

from prefect import task

from prefect_mlops import gate as model_gate
from prefect_mlops.config import GateConfig
from prefect_mlops.results import (
    ChampionScore,
    Evaluation,
    GateCheck,
    GateDecision,
    ModelVersionRef,
    PromotionDecision,
    ValidationSummary,
)
from prefect_mlops.settings import Settings
from prefect_mlops.tracking import mlflow_client
from tasks.logs import run_logger
from tasks.policies import IO_RETRIES


@task(task_run_name="promotion decision for v{challenger.version}")
def decide_promotion(
    evaluation: Evaluation,
    champion: ChampionScore | None,
    validation: ValidationSummary,
    challenger: ModelVersionRef,
    gate: GateConfig,
) -> PromotionDecision:
    """Whether a blessed challenger replaces the champion: only when strictly better on rows
    neither was trained on."""
    decision = model_gate.decide_promotion(
        evaluation, champion, validation, challenger.version, gate
    )
    verdict = "promote" if decision.promote else "keep the champion"
    run_logger().info("promotion of v%s: %s (%s)", challenger.version, verdict, decision.reason)
    return decision


@task(**IO_RETRIES, task_run_name="record why v{challenger.version} stays challenger")
def record_promotion_decision(
    challenger: ModelVersionRef, promotion: PromotionDecision, settings: Settings
) -> None:
    """Tag the challenger with why it was not promoted, so the registry shows it too."""
    client = mlflow_client(settings)
    client.set_model_version_tag(
        challenger.name, challenger.version, model_gate.PROMOTION_REASON_TAG, promotion.reason
    )


@task(task_run_name="model gate")
def decide_gate(
    evaluation: Evaluation,
    champion: ChampionScore | None,
    load_check: GateCheck,
    gate: GateConfig,
) -> GateDecision:
    """Apply thresholds, the champion comparison and the load check to the candidate."""
    decision = model_gate.decide(evaluation, champion, load_check, gate)
    failed = [f"{c.rule} ({c.detail})" for c in decision.checks if not c.passed]
    run_logger().info(
        "model gate: %s, %d of %d rules passed%s",
        "BLESSED" if decision.passed else "REJECTED",
        len(decision.checks) - len(failed),
        len(decision.checks),
        f"; failed: {'; '.join(failed)}" if failed else "",
    )
    return decision


@task(task_run_name="enforce model gate")
def enforce_model_gate(decision: GateDecision) -> None:
    """Stop the run, naming every violated rule, when the candidate is not blessed."""
    model_gate.check_model_gate(decision)
