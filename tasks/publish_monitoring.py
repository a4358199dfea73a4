"""Publishing a monitoring run: its MLflow run, the Evidently workspace, the UI artifacts."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.runtime import flow_run
from prefect.states import Completed, State

from prefect_mlops.config import PipelineConfig
from prefect_mlops.monitoring import DriftSummary, MonitoredModel, publish, workspace
from prefect_mlops.monitoring.decision import alarm_name
from prefect_mlops.monitoring.drift import DRIFT_HTML, QUALITY_HTML
from prefect_mlops.names import artifact_key
from prefect_mlops.report_links import report_url
from prefect_mlops.settings import Settings
from prefect_mlops.tracking import ensure_experiment, mlflow_client
from tasks.logs import run_logger
from tasks.policies import IO_RETRIES


@task(**IO_RETRIES, task_run_name="log MLflow monitoring run")
def log_monitoring_run(
    summary: DriftSummary, config: PipelineConfig, settings: Settings
) -> DriftSummary:
    """A monitoring MLflow run linked to the model version: its window and reference as
    dataset inputs, key metrics, the HTML reports and the summary JSON."""
    client = mlflow_client(settings)
    experiment_id = ensure_experiment(client, f"{config.experiment}-monitoring", settings)
    flow_run_id = flow_run.get_id()
    linked = publish.log_monitoring_run(client, experiment_id, summary, flow_run_id)
    run_logger().info(
        "MLflow monitoring run %s (experiment %s)", linked.mlflow_run_id, experiment_id
    )
    return linked


@task(task_run_name="add to Evidently workspace")
def add_to_workspace(
    summary: DriftSummary, config: PipelineConfig, model: MonitoredModel, settings: Settings
) -> DriftSummary:
    """Add the Evidently snapshots to the model's local workspace project (drift over time)."""
    binary = model.positive_label is not None
    return workspace.add_to_workspace(summary, settings.evidently_dir, config.task, binary)


@task(task_run_name="publish monitoring summary")
def publish_monitoring_summary(summary: DriftSummary, settings: Settings) -> None:
    """Publish the decision as a Prefect artifact, with links to the MLflow run (when MLflow is
    a server: a local store has no page to link to) and to each report (its report-server page,
    else its view in the MLflow UI)."""
    create_markdown_artifact(
        markdown=publish.markdown_summary(summary, settings),
        key=artifact_key("monitoring", summary.model_name),
        description=f"monitoring of {summary.model_name} v{summary.model_version}",
    )
    name, version = summary.model_name, summary.model_version
    run_url = _mlflow_link(summary, settings, None)
    if run_url:
        create_link_artifact(
            run_url,
            link_text=f"MLflow monitoring run of {name} v{version}",
            key=artifact_key("monitoring-run", name),
            description=f"decision {summary.decision.outcome}",
        )
    drift = summary.drift
    reports = [("drift", DRIFT_HTML, drift.html_uri if drift else None)]
    reports.append(("quality", QUALITY_HTML, drift.quality_html_uri if drift else None))
    for kind, html, path in reports:
        url = path and (report_url(path, settings) or _mlflow_link(summary, settings, html))
        if url:
            create_link_artifact(
                url,
                link_text=f"Evidently {kind} report of {name} v{version}",
                key=artifact_key(f"{kind}-report", name),
                description=f"{summary.window}",
            )
            # on the Logs tab too, the one the run's page opens on (the UI links the URL)
            run_logger().info("Evidently %s report of %s v%s: %s", kind, name, version, url)


def _mlflow_link(summary: DriftSummary, settings: Settings, artifact: str | None) -> str | None:
    # The monitoring run's page in the MLflow UI, or one of its artifacts' views (None without
    # an MLflow server or before the run is logged).
    run_id, experiment_id = summary.mlflow_run_id, summary.mlflow_experiment_id
    if not run_id or not experiment_id:
        return None
    uri = settings.tracking_uri
    if artifact is None:
        return publish.mlflow_run_link(uri, experiment_id, run_id)
    return publish.mlflow_artifact_link(uri, experiment_id, run_id, artifact)


def final_state(summary: DriftSummary) -> State[DriftSummary] | DriftSummary:
    """The run's result: when a threshold was breached, a Completed state named by the alarm
    (`Drift detected`, `Performance degraded`, `Data invalid`) with the reason as its message;
    else the summary itself (a plain `Completed`).

    It stays a COMPLETED-type state, so schedules, retries and automations treat the run as
    finished; the Prefect UI and API show its name and message.
    """
    name = alarm_name(summary.decision)
    if name is None:
        return summary
    return Completed(data=summary, name=name, message=summary.decision.reason[:500])
