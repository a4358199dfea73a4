"""Report tasks: Prefect artifacts a person reads in the UI, built by the core's reports."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from prefect_mlops.config import PipelineConfig
from prefect_mlops.context import TrainingContext
from prefect_mlops.names import artifact_key
from prefect_mlops.reports import gate_markdown, training_summary_markdown
from prefect_mlops.results import CandidateScore, GateDecision, TrainingResult


@task
def publish_gate_decision(decision: GateDecision, config: PipelineConfig) -> None:
    """Publish the gate decision and its reasons as a Prefect artifact."""
    create_markdown_artifact(
        markdown=gate_markdown(decision),
        key=artifact_key("gate", config.name),
        description=f"model gate decision for {config.registered_model_name}",
    )


@task
def publish_leaderboard(scores: list[CandidateScore], config: PipelineConfig) -> None:
    """Publish the candidate leaderboard as a Prefect table artifact."""
    create_table_artifact(
        table=[
            {
                "candidate": s.spec.label,
                "estimator": s.spec.estimator,
                "params": str(s.spec.params),
                f"cv_{s.metric}": round(s.cv_mean, 6),
                "cv_std": round(s.cv_std, 6),
            }
            for s in scores
        ],
        key=artifact_key("leaderboard", config.name),
        description="cross-validated candidates",
    )


@task
def publish_training_summary(
    ctx: TrainingContext, result: TrainingResult, scores: list[CandidateScore]
) -> None:
    """Publish one markdown artifact summarising the whole training run."""
    create_markdown_artifact(
        markdown=training_summary_markdown(ctx.config, result, scores, ctx.settings.tracking_uri),
        key=artifact_key("training", ctx.config.name),
        description=f"training summary for {ctx.model_name}",
    )
