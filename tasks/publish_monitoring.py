"""Publishing a monitoring run: its MLflow run, the Evidently workspace, the UI artifact."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from prefect_mlops.config import PipelineConfig
from prefect_mlops.monitoring import DriftSummary, publish, workspace
from prefect_mlops.names import artifact_key
from prefect_mlops.settings import Settings
from prefect_mlops.tracking import ensure_experiment, mlflow_client
from tasks.policies import IO_RETRIES


@task(**IO_RETRIES)
def log_monitoring_run(
    summary: DriftSummary, config: PipelineConfig, settings: Settings
) -> DriftSummary:
    """A monitoring MLflow run tagged with the model version: key metrics, HTML, summary JSON."""
    client = mlflow_client(settings)
    experiment_id = ensure_experiment(client, f"{config.experiment}-monitoring", settings)
    flow_run_id = flow_run.get_id()
    return publish.log_monitoring_run(client, experiment_id, summary, flow_run_id)


@task
def add_to_workspace(summary: DriftSummary, settings: Settings) -> DriftSummary:
    """Add the Evidently snapshots to the model's local workspace project (drift over time)."""
    return workspace.add_to_workspace(summary, settings.evidently_dir)


@task
def publish_monitoring_summary(summary: DriftSummary) -> None:
    """Publish the decision and links (Evidently HTML, MLflow run) as a Prefect artifact."""
    create_markdown_artifact(
        markdown=publish.markdown_summary(summary),
        key=artifact_key("monitoring", summary.model_name),
        description=f"monitoring of {summary.model_name} v{summary.model_version}",
    )
