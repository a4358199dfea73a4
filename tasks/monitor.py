"""Monitoring tasks: the reference and the current window, scoring, drift, the decision, events.

Thin wrappers of `prefect_mlops.monitoring` adding retries on I/O and visibility in the UI.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prefect import task
from prefect.events import emit_event
from prefect.runtime import flow_run

from prefect_mlops.config import PipelineConfig
from prefect_mlops.errors import MlopsError, MonitoringError
from prefect_mlops.expectations.run import validate_frame
from prefect_mlops.io import read_parquet
from prefect_mlops.monitoring import (
    CATCH_ALL_RETRAINING,
    RETRAIN_DEPLOYMENT_LABEL,
    DriftReport,
    DriftSummary,
    MonitoredModel,
    MonitoringDecision,
    ScoredRefs,
    SnapshotLabels,
    WindowRef,
    WindowSpec,
    drift,
    model_retraining_deployment,
    reference,
    scoring,
)
from prefect_mlops.monitoring import decision as decisions
from prefect_mlops.monitoring.publish import event_payload, event_related, event_resource
from prefect_mlops.monitoring.window import freeze_window, read_window, run_folder
from prefect_mlops.results import ValidationSummary
from prefect_mlops.scoring_inputs import model_label
from prefect_mlops.settings import Settings
from prefect_mlops.snapshots import fingerprint_frame
from prefect_mlops.tracking import mlflow_client
from tasks.logs import run_logger
from tasks.policies import IO_RETRIES
from tasks.routing import deployment_or_catch_all


@task(**IO_RETRIES, task_run_name="resolve {name}@{alias}")
def resolve_monitored_model(name: str, alias: str, settings: Settings) -> MonitoredModel:
    """The version behind `alias`, its training snapshot (lineage tags) and holdout metrics."""
    model = reference.resolve_monitored_model(mlflow_client(settings), name, alias)
    run_logger().info(
        "monitoring %s v%s (@%s), reference %s, quality against %s",
        name,
        model.version,
        alias,
        model.snapshot_uri,
        "its holdout" if model.holdout_uri else "its training snapshot (no holdout file)",
    )
    if model.missing_holdout:  # quality baselines stay the logged holdout metrics
        run_logger().warning(
            "holdout split of %s v%s is missing: %s; the quality report compares against the "
            "training snapshot instead",
            name,
            model.version,
            model.missing_holdout,
        )
    return model


@task(**IO_RETRIES, task_run_name="read window")
def load_current_window(
    spec: WindowSpec, config: PipelineConfig, model: MonitoredModel, settings: Settings
) -> WindowRef:
    """Freeze the current window as Parquet in a new monitoring folder (it may have no rows; a
    log that is missing or holds no row of the model is refused, naming where it was read)."""
    current = read_window(spec, model.name, config, settings)
    folder = run_folder(settings, model.name)
    window = freeze_window(
        current.frame, spec, config, folder, current.location, current.last_logged
    )
    run_logger().info(
        "window %s of %s: %s rows, %s labelled%s",
        window.source,
        window.location,
        f"{window.rows:,}",
        f"{window.labeled_rows:,}",
        f" ({window.start} to {window.end})" if window.start else "",
    )
    return window


@contextmanager
def named_failure(step: str, model: MonitoredModel, columns: list[str]) -> Iterator[None]:
    """A library's failure in a monitoring step, raised as MonitoringError naming the model
    version and the columns it was working on (project errors pass through unchanged)."""
    try:
        yield
    except MlopsError:
        raise
    except Exception as exc:
        raise MonitoringError(
            f"{step} of {model_label(model.name, model.version)} failed on columns {columns}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


@task(task_run_name="validate window")
def validate_window(
    window: WindowRef, config: PipelineConfig, settings: Settings, model: MonitoredModel
) -> ValidationSummary:
    """Run the scoring checkpoint (features suite) on the window; failures are reported."""
    frame = read_parquet(window.uri)
    batch_id = f"monitoring-{fingerprint_frame(frame)}"
    with named_failure("data validation", model, [str(c) for c in frame.columns]):
        return validate_frame(frame, config, settings, purpose="scoring", batch_id=batch_id)


@task(task_run_name="score reference and window")
def score_windows(
    model: MonitoredModel, window: WindowRef, config: PipelineConfig, settings: Settings
) -> ScoredRefs:
    """Predict reference and current rows with the monitored version (logged ones as fallback)."""
    estimator = reference.load_estimator(model, settings)
    return scoring.score_windows(model, window, config, estimator)


def snapshot_labels(model: MonitoredModel, window: WindowRef) -> SnapshotLabels:
    """What names this run's Evidently snapshots: version, window, its span and rows, the run."""
    run_id = flow_run.get_id()
    return SnapshotLabels(
        model=model.name,
        version=model.version,
        alias=model.alias,
        window=window.source,
        window_start=window.start,
        window_end=window.end,
        rows=window.rows,
        flow_run_id=str(run_id) if run_id else None,
    )


@task(task_run_name="Evidently drift and quality")
def run_drift_report(
    scored: ScoredRefs, model: MonitoredModel, config: PipelineConfig, window: WindowRef
) -> DriftReport:
    """Evidently reports (HTML and snapshot JSON beside the window): drift, summary, quality."""
    reference_frame, current_frame = scoring.scored_frames(scored)
    folder = Path(scored.current_uri).parent
    with named_failure("the drift report", model, [str(c) for c in current_frame.columns]):
        found = drift.compute_drift(
            reference_frame,
            current_frame,
            config,
            scored.schema_problems,
            model.baseline,
            folder,
            positive_label=model.positive_label,
            holdout=scoring.scored_holdout(scored),
            classes=scored.classes,
            labels=snapshot_labels(model, window),
        )
    report = found.report
    quality = report.quality
    run_logger().info(
        "drift: %.0f%% of features drifted %s; prediction drift %s; quality %s",
        100 * report.drifted_share,
        report.drifted_columns,
        report.prediction.drifted if report.prediction else "not compared",
        f"{quality.metric} {quality.current:.4g} vs holdout "
        + (f"{quality.baseline:.4g}" if quality.baseline is not None else "-")
        + f" on {quality.labeled_rows:,} labels"
        if quality
        else "not measured (too few labels)",
    )
    for problem in report.problems:
        run_logger().warning("monitoring problem: %s", problem)
    return report


@task(task_run_name="decide")
def decide_monitoring(
    report: DriftReport, validation: ValidationSummary, config: PipelineConfig
) -> MonitoringDecision:
    """Compare drift, prediction drift, quality and validation with the configured thresholds."""
    decision = decisions.decide(report, validation, config.monitoring)
    log = run_logger().warning if decision.outcome == "alarm" else run_logger().info
    log("decision %s: %s", decision.outcome, decision.reason)
    return decision


@task(task_run_name="judge empty window of {model.name}")
def judge_empty_window(
    window: WindowRef, model: MonitoredModel, config: PipelineConfig
) -> MonitoringDecision:
    """An empty window, by `monitoring.empty_window`: a no-traffic alarm, skip, or fail."""
    decision = decisions.judge_empty_window(window, model.name, config.monitoring)
    log = run_logger().warning if decision.outcome == "alarm" else run_logger().info
    log("decision %s: %s", decision.outcome, decision.reason)
    return decision


@task(task_run_name="summarize monitoring of {model.name} v{model.version}")
def summarize_monitoring(
    model: MonitoredModel,
    window: WindowRef,
    config_path: str,
    decision: MonitoringDecision,
    report: DriftReport | None = None,
    validation: ValidationSummary | None = None,
) -> DriftSummary:
    """The typed monitoring summary (what the flow returns and the events carry)."""
    return decisions.summarize(model, window, config_path, decision, report, validation)


def retraining_deployment_of(model_name: str) -> str:
    """The deployment that retrains a model: its own `training/train-<model>` when deployed on
    the server (`mlops deploy --config`), else prefect.yaml's catch-all `training/train`."""
    return deployment_or_catch_all(model_retraining_deployment(model_name), CATCH_ALL_RETRAINING)


@task(task_run_name="emit events")
def emit_monitoring_events(
    summary: DriftSummary, retrain_deployment: str | None = None
) -> DriftSummary:
    """Emit one Prefect event per kind of breach; the resource is the registered model, labelled
    with the deployment whose trigger retrains it (default: looked up on the server)."""
    if not summary.decision.events:
        return summary
    retrainer = retrain_deployment or retraining_deployment_of(summary.model_name)
    resource = {**event_resource(summary), RETRAIN_DEPLOYMENT_LABEL: retrainer}
    related, payload = event_related(summary), event_payload(summary)
    ids = []
    for name in summary.decision.events:
        event = emit_event(event=name, resource=resource, related=related, payload=payload)
        if event is not None:
            ids.append(str(event.id))
    return summary.model_copy(update={"events": ids})
