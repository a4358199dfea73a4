"""Report tasks: Prefect artifacts a person reads in the UI, built by the core's reports."""

from __future__ import annotations

from uuid import UUID

from prefect import task
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)
from prefect.runtime import flow_run as current_run

from prefect_mlops.config import PipelineConfig
from prefect_mlops.context import TrainingContext
from prefect_mlops.episode import cause_markdown, service_markdown, service_model_url
from prefect_mlops.names import artifact_key
from prefect_mlops.reports import (
    gate_markdown,
    mlflow_run_text,
    mlflow_run_url,
    mlflow_version_url,
    number,
    params_text,
    training_summary_markdown,
)
from prefect_mlops.results import (
    CandidateScore,
    GateDecision,
    ModelVersionRef,
    PromotionDecision,
    TrainingResult,
)
from prefect_mlops.settings import Settings
from tasks.episode import create_run_markdown
from tasks.logs import run_logger


@task(task_run_name="publish gate decision")
def publish_gate_decision(decision: GateDecision, config: PipelineConfig) -> None:
    """Publish the gate decision and its reasons as a Prefect artifact."""
    create_markdown_artifact(
        markdown=gate_markdown(decision),
        key=artifact_key("gate", config.name),
        description=f"model gate decision for {config.registered_model_name}",
    )


@task(task_run_name="publish leaderboard")
def publish_leaderboard(scores: list[CandidateScore], config: PipelineConfig) -> None:
    """Publish the candidate leaderboard as a Prefect table artifact."""
    create_table_artifact(
        table=[
            {
                "candidate": s.spec.label,
                "estimator": s.spec.estimator,
                "params": params_text(s.spec.params),
                f"cv_{s.metric}": number(s.cv_mean),
                "cv_std": number(s.cv_std, 2),
                "seconds": f"{s.fit_seconds:.1f}",
            }
            for s in scores
        ],
        key=artifact_key("leaderboard", config.name),
        description="cross-validated candidates",
    )


@task(task_run_name="publish training summary")
def publish_training_summary(
    ctx: TrainingContext, result: TrainingResult, scores: list[CandidateScore]
) -> None:
    """Publish one markdown artifact summarising the whole training run, with what started it
    (the monitoring run and its drift report) and the service answering with a new champion."""
    started_by = cause_markdown(ctx.cause, ctx.settings) if ctx.cause else ""
    uri, version = ctx.settings.tracking_uri, result.model_version
    served = service_markdown(
        ctx.settings.service_url, version.name, version.version, result.promoted
    )
    markdown = training_summary_markdown(ctx.config, result, scores, uri, started_by) + (
        f"\n{served}" if served else ""
    )
    key = artifact_key("training", ctx.config.name)
    description = f"training summary for {ctx.model_name}"
    run_id = current_run.get_id()
    if run_id is None:  # the task called alone (`.fn`): no flow run to publish on
        create_markdown_artifact(markdown=markdown, key=key, description=description)
        return
    # On the flow run itself: its Artifacts tab lists it, however many task runs it has.
    create_run_markdown(UUID(run_id), key, markdown, description)


@task(task_run_name="link MLflow and reports")
def publish_links(ctx: TrainingContext, result: TrainingResult) -> None:
    """Link artifacts to the MLflow run, the model version and (when it made the version
    champion and the service's address is known) the service: one click from the Prefect UI
    (with no MLflow server, a note naming the run id and the store instead)."""
    uri, name, version = ctx.settings.tracking_uri, ctx.config.name, result.model_version
    run_url = mlflow_run_url(uri, result.mlflow_run_id) if result.mlflow_run_id else None
    version_url = mlflow_version_url(uri, version.name, version.version)
    if run_url:
        create_link_artifact(
            run_url,
            link_text=f"MLflow run {result.mlflow_run_id}",
            key=artifact_key("mlflow-run", name),
            description=f"the training run of {version.name} in MLflow",
        )
    if version_url:
        create_link_artifact(
            version_url,
            link_text=f"{version.name} v{version.version} in the MLflow registry",
            key=artifact_key("model-version", name),
            description=f"aliases: {', '.join(version.aliases) or 'none'}",
        )
    if ctx.settings.service_url and result.promoted:
        create_link_artifact(
            service_model_url(ctx.settings.service_url, version.name),
            link_text=f"{version.name} on the prediction service",
            key=artifact_key("service", name),
            description=f"answers with the champion, v{version.version} once loaded",
        )
    if not (run_url and version_url):
        create_markdown_artifact(
            markdown=(
                f"**MLflow**: {mlflow_run_text(uri, result.mlflow_run_id)}; "
                f"model version `{version.name}` v{version.version}"
            ),
            key=artifact_key("mlflow", name),
            description="where this run's model is in MLflow",
        )


def log_outcome(
    version: ModelVersionRef, promotion: PromotionDecision, settings: Settings | None = None
) -> None:
    """The run's outcome in its log: the registered version and what happened to the champion,
    with the version's MLflow page and (once promoted) the service's page of the model as URLs,
    which the Prefect UI makes links on the Logs tab a run's page opens on."""
    verdict = "promoted to champion" if promotion.promote else "champion kept"
    run_logger().info(
        "registered %s v%s (aliases: %s); %s: %s",
        version.name,
        version.version,
        ", ".join(version.aliases) or "none",
        verdict,
        promotion.reason,
    )
    if settings is None:
        return
    page = mlflow_version_url(settings.tracking_uri, version.name, version.version)
    if page:
        run_logger().info("%s v%s in MLflow: %s", version.name, version.version, page)
    if settings.service_url and promotion.promote:
        service = service_model_url(settings.service_url, version.name)
        run_logger().info("%s on the prediction service: %s", version.name, service)
