"""Publishing a monitoring run: the Markdown summary, the event's resource and payload, MLflow."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

from mlflow.entities import DatasetInput, InputTag, LoggedModelInput, Metric, RunStatus
from mlflow.tracking import MlflowClient
from mlflow.tracking.context import registry as context_registry
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NOTE, MLFLOW_SOURCE_NAME

from prefect_mlops.artifact_store import ArtifactStore, is_remote, local_file
from prefect_mlops.lineage import SplitDataset, describe_dataset
from prefect_mlops.monitoring.drift import DRIFT_HTML, QUALITY_HTML
from prefect_mlops.monitoring.records import DriftSummary, model_resource_id
from prefect_mlops.names import check_name
from prefect_mlops.report_links import report_link
from prefect_mlops.reports import mlflow_run_url, mlflow_ui_base, number
from prefect_mlops.results import ValidationSummary
from prefect_mlops.settings import Settings

SUMMARY_JSON = "summary.json"
WINDOW_PARQUET = "current.parquet"
MLFLOW_ARTIFACT_DIR = "monitoring"
EVIDENTLY_PROJECT_PREFIX = "mlops"
MONITORING_ENTRYPOINT = "flows/monitoring.py:monitoring_flow"
# The MLflow dataset contexts of a monitoring run's inputs (training runs log "training" and
# "holdout"): the window judged and the snapshot it was judged against.
WINDOW_CONTEXT, REFERENCE_CONTEXT = "monitoring-window", "reference"
# The monitoring MLflow run's tag naming where its reports and summary are kept by the artifact
# store: `<root>/monitoring/<model>/<run folder>` (the run folder itself on a local root).
MONITORING_FOLDER_TAG = "monitoring.folder"
MONITORING_FOLDER = "monitoring"


def project_name(model_name: str) -> str:
    """The Evidently workspace project of a model, e.g. `mlops-bikeshare-demand`."""
    return f"{EVIDENTLY_PROJECT_PREFIX}-{check_name(model_name, 'registered_model_name')}"


def run_folder_of(summary: DriftSummary) -> Path:
    """The run's folder (window, reports, summary): where its drift report was written."""
    if summary.drift is None:
        raise ValueError(f"monitoring of {summary.model_name} has no drift report to publish")
    return Path(summary.drift.html_uri).parent


def validation_text(validation: ValidationSummary | None) -> str:
    """ "passed", or each failed expectation with its column and what was observed."""
    if validation is None:
        return "-"
    if validation.success:
        return "passed"
    failures = [
        f.expectation + (f" on {f.column}" if f.column else "") + f": {f.observed}"
        for f in validation.failed
    ]
    return "; ".join(failures) or "-"


def mlflow_run_link(tracking_uri: str, experiment_id: str, run_id: str) -> str | None:
    """The run's page in the MLflow UI (None without an MLflow server)."""
    base = mlflow_ui_base(tracking_uri)
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}" if base else None


def mlflow_artifact_link(
    tracking_uri: str, experiment_id: str, run_id: str, name: str
) -> str | None:
    """A logged monitoring report in the MLflow UI's artifact view (it renders the HTML)."""
    run = mlflow_run_link(tracking_uri, experiment_id, run_id)
    return f"{run}/artifacts/{MLFLOW_ARTIFACT_DIR}/{name}" if run else None


def _report(uri: str | None, settings: Settings, label: str) -> str:
    # A link to the report server's page (browsers refuse file:// links from the Prefect UI);
    # with no report server, the path as text.
    return report_link(uri, settings, label) if uri else "-"


def _run_link(run_id: str | None, settings: Settings) -> str:
    """The monitoring run's page in the MLflow UI; its id alone without an MLflow server."""
    if not run_id:
        return "-"
    url = mlflow_run_url(settings.tracking_uri, run_id)
    return f"[{run_id}]({url})" if url else f"`{run_id}`"


def markdown_summary(summary: DriftSummary, settings: Settings) -> str:
    """The monitoring outcome for the Prefect UI, each report linked by its report-server URL."""
    drift = summary.drift
    quality = drift.quality if drift else None
    prediction = drift.prediction if drift else None
    quality_html = drift.quality_html_uri if drift else None
    span = (
        f" ({summary.window_start} to {summary.window_end})"
        if summary.window_start and summary.window_end
        else ""
    )
    rows = [
        ("model", f"{summary.model_name} v{summary.model_version} (@{summary.alias})"),
        (
            "window",
            f"{summary.window}{span}: {summary.current_rows:,} rows, "
            f"{summary.labeled_rows:,} labelled",
        ),
        ("decision", f"**{summary.decision.outcome}**: {summary.decision.reason}"),
        ("drifted features", f"{summary.drifted_share:.0%} {summary.drifted_columns}"),
        (
            "prediction drift",
            f"{summary.prediction_drift} "
            f"(score {number(prediction.score if prediction else None)})",
        ),
        (
            "quality",
            f"{quality.metric} {number(quality.current)} vs holdout {number(quality.baseline)}"
            if quality
            else "no labels (drift only)",
        ),
        ("validation", validation_text(summary.validation)),
        ("schema", "; ".join(drift.schema_problems if drift else []) or "unchanged"),
        ("report", _report(summary.report_uri, settings, "drift report")),
        ("quality report", _report(quality_html, settings, "quality report")),
        ("MLflow run", _run_link(summary.mlflow_run_id, settings)),
        ("events", ", ".join(summary.events) or "none"),
    ]
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    return f"## Monitoring: {summary.decision.outcome}\n\n| | |\n|---|---|\n{table}\n"


def event_resource(summary: DriftSummary) -> dict[str, str]:
    """The registered model as the Prefect event's resource."""
    return {
        "prefect.resource.id": model_resource_id(summary.model_name),
        "prefect.resource.name": summary.model_name,
        "prefect.resource.role": "model",
        "mlops.model.version": summary.model_version,
        "mlops.model.alias": summary.alias,
    }


def event_related(summary: DriftSummary) -> list[dict[str, str]]:
    """Related resources of the event: the monitoring run in MLflow, once logged."""
    if not summary.mlflow_run_id:
        return []
    return [
        {
            "prefect.resource.id": f"mlflow.run.{summary.mlflow_run_id}",
            "prefect.resource.role": "monitoring-run",
        }
    ]


def event_payload(summary: DriftSummary) -> dict[str, Any]:
    """The summary as JSON, the payload of every monitoring event.

    Automations read `config_path` (retraining) and the headline fields at the top level.
    """
    return summary.model_dump(mode="json", exclude={"events"})


def run_tags(summary: DriftSummary, flow_run_id: str | None) -> dict[str, str]:
    """Tags of the monitoring MLflow run: the model version, its reference and the outcome."""
    return {
        "mlops.run_type": "monitoring",
        "model_name": summary.model_name,
        "model_version": summary.model_version,
        "model_alias": summary.alias,
        "reference_snapshot": summary.reference_snapshot,
        "window": summary.window,
        **({"window_start": summary.window_start} if summary.window_start else {}),
        **({"window_end": summary.window_end} if summary.window_end else {}),
        "decision": summary.decision.outcome,
        "prefect.flow_run_id": flow_run_id or "none",
    }


def run_note(summary: DriftSummary) -> str:
    """The run's description in the MLflow UI: which version, which window, what was decided."""
    return (
        f"Monitoring of {summary.model_name} v{summary.model_version} (@{summary.alias}) on "
        f"{summary.window} ({summary.current_rows:,} rows, {summary.labeled_rows:,} labelled): "
        f"**{summary.decision.outcome}**. {summary.decision.reason}."
    )


def file_digest(path: Path) -> str:
    """A content digest of a file (what tells two windows apart in MLflow's dataset list)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def dataset_input(uri: str, name: str, context: str) -> DatasetInput:
    """A Parquet file as an MLflow dataset input (schema from its first rows, its content's
    digest), with the role it played in the run."""
    described = describe_dataset(uri, name, context)
    dataset = SplitDataset(
        source=described.source,
        name=name,
        digest=file_digest(Path(local_file(uri))),  # an object store's through the cache
        schema=described.schema,
    )
    return DatasetInput(dataset._to_mlflow_entity(), [InputTag("mlflow.data.context", context)])


def log_monitoring_inputs(
    client: MlflowClient, run_id: str, summary: DriftSummary, model_id: str | None
) -> None:
    """The window and the reference as dataset inputs, and the monitored version's logged model
    as a model input: the run's page links the version it judged and the data it judged on."""
    window = run_folder_of(summary) / WINDOW_PARQUET
    datasets = [
        dataset_input(
            str(window), f"{summary.model_name}-window-{file_digest(window)[:8]}", WINDOW_CONTEXT
        )
    ]
    reference = summary.reference_snapshot
    if reference and (is_remote(reference) or Path(reference).is_file()):
        name = f"{summary.model_name}-reference-v{summary.model_version}"
        datasets.append(dataset_input(summary.reference_snapshot, name, REFERENCE_CONTEXT))
    models = [LoggedModelInput(model_id)] if model_id else None
    client.log_inputs(run_id, datasets=datasets, models=models)


def run_metrics(summary: DriftSummary) -> dict[str, float]:
    """Key figures of the monitoring MLflow run, one per drift score and quality metric."""
    drift, validation = summary.drift, summary.validation
    values = {
        "drifted_share": summary.drifted_share,
        "drifted_columns": float(len(summary.drifted_columns)),
        "current_rows": float(summary.current_rows),
        "labeled_rows": float(summary.labeled_rows),
        "validation_failures": float(len(validation.failed) if validation else 0),
    }
    if drift is None:
        return values
    values.update({f"drift_{c.column}": c.score for c in drift.columns if c.score is not None})
    if drift.prediction is not None and drift.prediction.score is not None:
        values["prediction_drift_score"] = drift.prediction.score
    if drift.quality is not None:
        values.update({f"current_{k}": v for k, v in drift.quality.current_metrics.items()})
        if drift.quality.relative_change is not None:
            values["quality_relative_change"] = drift.quality.relative_change
    return values


def store_run_folder(folder: Path, model_name: str, store: ArtifactStore) -> str:
    """The run's HTML reports and summary put under the root's `monitoring/<model>/<run>/`
    when the root is an object store; that folder's URI (the run folder on a local root)."""
    if store.is_local:
        return str(folder)
    target = store.uri(MONITORING_FOLDER, model_name, folder.name)
    for name in (DRIFT_HTML, QUALITY_HTML, SUMMARY_JSON):
        if (folder / name).is_file():
            store.publish(f"{target}/{name}", folder / name)
    return target


def log_monitoring_run(
    client: MlflowClient,
    experiment_id: str,
    summary: DriftSummary,
    flow_run_id: str | None,
    store: ArtifactStore | None = None,
) -> DriftSummary:
    """A monitoring MLflow run tagged with the model version: key metrics, HTML, summary JSON,
    and the URI of the reports' folder in the artifact store (`store`, else the environment's).

    The version itself is tagged with the run and its outcome, so the registry shows both.
    """
    version = client.get_model_version(summary.model_name, summary.model_version)
    context = {k: str(v) for k, v in context_registry.resolve_tags().items()}
    run = client.create_run(
        experiment_id,
        run_name=(
            f"monitor {summary.model_name} v{summary.model_version} ({summary.decision.outcome})"
        ),
        tags={
            **context,
            MLFLOW_SOURCE_NAME: MONITORING_ENTRYPOINT,
            **run_tags(summary, flow_run_id),
            "model_run_id": str(version.run_id or ""),
            MLFLOW_RUN_NOTE: run_note(summary),
        },
    )
    run_id = run.info.run_id
    log_monitoring_inputs(client, run_id, summary, getattr(version, "model_id", None))
    now = int(time.time() * 1000)
    metrics = [Metric(k, float(v), now, 0) for k, v in run_metrics(summary).items()]
    client.log_batch(run_id, metrics=metrics)
    linked = summary.model_copy(
        update={"mlflow_run_id": run_id, "mlflow_experiment_id": experiment_id}
    )
    folder = run_folder_of(summary)
    (folder / SUMMARY_JSON).write_text(linked.model_dump_json(indent=2))
    for name in (DRIFT_HTML, QUALITY_HTML, SUMMARY_JSON):
        if (folder / name).is_file():
            client.log_artifact(run_id, str(folder / name), MLFLOW_ARTIFACT_DIR)
    stored = store_run_folder(folder, summary.model_name, store or Settings().artifact_store())
    client.set_tag(run_id, MONITORING_FOLDER_TAG, stored)
    client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))
    name, number_ = summary.model_name, summary.model_version
    client.set_model_version_tag(name, number_, "monitoring.last_run_id", run_id)
    client.set_model_version_tag(name, number_, "monitoring.last_outcome", summary.decision.outcome)
    return linked
