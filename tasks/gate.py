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
from tasks.policies import IO_RETRIES


@task
def decide_promotion(
    evaluation: Evaluation,
    champion: ChampionScore | None,
    validation: ValidationSummary,
    challenger: ModelVersionRef,
    gate: GateConfig,
) -> PromotionDecision:
    """Whether a blessed challenger replaces the champion: only when strictly better on rows
    neither was trained on."""
    return model_gate.decide_promotion(evaluation, champion, validation, challenger.version, gate)


@task(**IO_RETRIES)
def record_promotion_decision(
    challenger: ModelVersionRef, promotion: PromotionDecision, settings: Settings
) -> None:
    """Tag the challenger with why it was not promoted, so the registry shows it too."""
    client = mlflow_client(settings)
    client.set_model_version_tag(
        challenger.name, challenger.version, model_gate.PROMOTION_REASON_TAG, promotion.reason
    )


@task
def decide_gate(
    evaluation: Evaluation,
    champion: ChampionScore | None,
    load_check: GateCheck,
    gate: GateConfig,
) -> GateDecision:
    """Apply thresholds, the champion comparison and the load check to the candidate."""
    return model_gate.decide(evaluation, champion, load_check, gate)


@task
def enforce_model_gate(decision: GateDecision) -> None:
    """Stop the run, naming every violated rule, when the candidate is not blessed."""
    model_gate.check_model_gate(decision)
