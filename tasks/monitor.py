"""Monitor: reference and current data of a model, Evidently drift, the decision and its events.

The reference is the snapshot the monitored version was trained on (its `data_snapshot` lineage
tag); the current window comes from the prediction log or an explicit dataset. Evidently's
results are wrapped in the typed records of `prefect_mlops.monitoring` right where they are read.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from evidently import (
    DataDefinition,
    Dataset,
    MulticlassClassification,
    Regression,
    Report,
)
from evidently.core.metric_types import TestStatus
from evidently.core.report import Snapshot as EvidentlySnapshot
from evidently.metrics import DriftedColumnsCount, ValueDrift
from evidently.presets import ClassificationPreset, DataSummaryPreset, RegressionPreset
from mlflow.entities import Metric, RunStatus
from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.events import emit_event
from prefect.runtime import flow_run
from sklearn import metrics as skm

from prefect_mlops.config import MonitoringConfig, PipelineConfig, TaskType
from prefect_mlops.io import read_parquet, write_parquet_atomic
from prefect_mlops.metrics import higher_is_better, regression_metrics
from prefect_mlops.monitoring import (
    DATA_INVALID,
    DRIFT_DETECTED,
    PERFORMANCE_DEGRADED,
    Breach,
    ColumnDrift,
    DriftReport,
    DriftSummary,
    MonitoredModel,
    MonitoringDecision,
    QualityChange,
    ReferenceDataError,
    ScoredRefs,
    WindowRef,
    WindowSpec,
    model_resource_id,
)
from prefect_mlops.names import artifact_key
from prefect_mlops.registry import find_version
from prefect_mlops.results import FeatureSchema, ValidationSummary
from prefect_mlops.settings import Settings
from prefect_mlops.tracking import ensure_experiment, mlflow_client, use_tracking
from tasks.features import infer_schema
from tasks.ingest import fingerprint_frame
from tasks.policies import IO_RETRIES
from tasks.validate import validate_frame

PREDICTION = "prediction"
LOG_SERVICE_COLUMNS = (
    "request_id",
    "row_index",
    "timestamp",
    "model_name",
    "model_version",
    "probabilities",
    "date",  # the Parquet log's day partition
)
LOG_LABEL = "label"
EVIDENTLY_PROJECT_PREFIX = "mlops"


def monitoring_root(settings: Settings) -> Path:
    """Monitoring outputs: one folder per run with the window, report and summary."""
    return settings.artifact_root / "monitoring"


def workspace_root(settings: Settings) -> Path:
    """The local Evidently workspace (`evidently ui --workspace <this>`)."""
    return settings.artifact_root / "evidently"


# --- reference: the monitored version and its training snapshot -------------------------------


@task(**IO_RETRIES)
def resolve_monitored_model(name: str, alias: str, settings: Settings) -> MonitoredModel:
    """The version behind `alias`, its training snapshot (lineage tags) and holdout metrics."""
    client = mlflow_client(settings)
    version = find_version(client, name, alias)
    if version is None:
        raise ReferenceDataError(f"registered model {name!r} has no alias {alias!r}")
    label = f"{name} v{version.version} (@{alias})"
    run_id = version.tags.get("mlflow_run_id") or version.run_id
    run = client.get_run(run_id) if run_id else None
    run_tags = run.data.tags if run else {}
    snapshot = version.tags.get("data_snapshot") or run_tags.get("data_snapshot")
    if not snapshot:
        raise ReferenceDataError(
            f"{label} has no data_snapshot lineage tag on the version or its run {run_id}: "
            "the data it was trained on is unknown, so it cannot be monitored"
        )
    if not Path(snapshot).is_file():
        raise ReferenceDataError(
            f"reference snapshot of {label} is missing: {snapshot} (data_fingerprint "
            f"{version.tags.get('data_fingerprint', '?')}); restore it or retrain the model"
        )
    metrics = run.data.metrics if run else {}
    return MonitoredModel(
        name=name,
        alias=alias,
        version=str(version.version),
        run_id=str(run_id),
        snapshot_uri=snapshot,
        fingerprint=version.tags.get("data_fingerprint", ""),
        baseline={
            key.removeprefix("holdout_"): float(value)
            for key, value in metrics.items()
            if key.startswith("holdout_")
        },
    )


# --- current window ------------------------------------------------------------------------------


def read_dataset(path: str) -> pd.DataFrame:
    """A CSV or Parquet file of current rows."""
    if not Path(path).is_file():
        raise ReferenceDataError(f"current dataset not found: {path}")
    return pd.read_parquet(path) if path.endswith(".parquet") else pd.read_csv(path)


def log_frame(
    spec: WindowSpec, model_name: str, config: PipelineConfig, settings: Settings
) -> pd.DataFrame:
    """Logged predictions of `model_name` inside the window; labels become the target column.

    The time a prediction was made stands in for the split clock (e.g. `timestamp`) when the
    requests did not carry it: live rows are scored as they happen.
    """
    from prefect_mlops.prediction_log import read_prediction_log

    directory = Path(spec.log_dir) if spec.log_dir else settings.artifact_root / "prediction_log"
    log = read_prediction_log(url=spec.log_url, directory=directory)
    log = log.loc[log["model_name"] == model_name] if len(log) else log
    if spec.hours is not None or spec.days is not None:
        span = pd.Timedelta(hours=spec.hours or 0.0) + pd.Timedelta(days=spec.days or 0.0)
        log = log.loc[pd.to_datetime(log["timestamp"], utc=True) > pd.Timestamp.now(UTC) - span]
    if spec.rows is not None:
        log = log.sort_values("timestamp", kind="stable").tail(spec.rows)
    clock = config.split.time_column if config.split.strategy == "time" else None
    frame = log.drop(columns=[c for c in LOG_SERVICE_COLUMNS if c in log.columns])
    if clock and clock not in frame.columns:
        frame[clock] = pd.to_datetime(log["timestamp"], utc=True).dt.tz_localize(None)
    return frame.rename(columns={LOG_LABEL: config.target}).reset_index(drop=True)


def window_frame(
    spec: WindowSpec, model_name: str, config: PipelineConfig, settings: Settings
) -> pd.DataFrame:
    """The current rows: an explicit dataset (its last `rows`), or the prediction log window."""
    if spec.dataset_path:
        frame = read_dataset(spec.dataset_path)
        return frame.tail(spec.rows).reset_index(drop=True) if spec.rows else frame
    return log_frame(spec, model_name, config, settings)


def _label_column(values: pd.Series, task_type: TaskType) -> pd.Series:
    if task_type == TaskType.regression:
        return pd.to_numeric(values, errors="coerce")
    return values


@task(**IO_RETRIES)
def load_current_window(
    spec: WindowSpec, config: PipelineConfig, model: MonitoredModel, settings: Settings
) -> WindowRef:
    """Freeze the current window as Parquet in a new monitoring folder (it may have no rows)."""
    frame = window_frame(spec, model.name, config, settings)
    if config.target in frame.columns:
        frame[config.target] = _label_column(frame[config.target], config.task)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = monitoring_root(settings) / model.name / f"{stamp}-{uuid.uuid4().hex[:6]}"
    path = folder / "current.parquet"
    write_parquet_atomic(frame, path)
    labeled = int(frame[config.target].notna().sum()) if config.target in frame.columns else 0
    return WindowRef(
        uri=str(path),
        rows=len(frame),
        labeled_rows=labeled,
        source=spec.describe(),
        has_logged_predictions=PREDICTION in frame.columns,
    )


# --- validation and scoring ----------------------------------------------------------------------


@task
def validate_window(
    window: WindowRef, config: PipelineConfig, settings: Settings
) -> ValidationSummary:
    """Run the scoring checkpoint (features suite) on the window; failures are reported."""
    frame = read_parquet(window.uri)
    batch_id = f"monitoring-{fingerprint_frame(frame)}"
    return validate_frame(frame, config, settings, purpose="scoring", batch_id=batch_id)


def schema_problems(
    reference: pd.DataFrame, current: pd.DataFrame, features: list[str]
) -> list[str]:
    """Features missing from the current window or whose kind (number vs text) changed."""
    problems = []
    for column in features:
        if column not in current.columns:
            problems.append(f"{column}: missing from the current data")
        elif pd.api.types.is_numeric_dtype(reference[column]) != pd.api.types.is_numeric_dtype(
            current[column]
        ):
            problems.append(
                f"{column}: type changed from {reference[column].dtype} to {current[column].dtype}"
            )
    return problems


def reference_schema(reference: pd.DataFrame, config: PipelineConfig) -> FeatureSchema:
    """The model's feature schema, inferred from its training snapshot as training did."""
    return infer_schema(reference.drop(columns=[PREDICTION], errors="ignore"), config)


@task
def score_windows(
    model: MonitoredModel, window: WindowRef, config: PipelineConfig, settings: Settings
) -> ScoredRefs:
    """Predict reference and current rows with the monitored version (logged ones as fallback).

    Only the predictions are written (one column beside the window): the data is already on disk.
    """
    use_tracking(settings)
    reference = read_parquet(model.snapshot_uri)
    current = read_parquet(window.uri)
    schema = reference_schema(reference, config)
    problems = schema_problems(reference, current, schema.features)
    estimator = mlflow.sklearn.load_model(f"models:/{model.name}/{model.version}")
    folder = Path(window.uri).parent
    reference_predictions = folder / "reference-predictions.parquet"
    write_predictions(estimator.predict(reference[schema.features]), reference_predictions)
    source, current_predictions = "model", None
    if not problems:
        current_predictions = folder / "current-predictions.parquet"
        write_predictions(estimator.predict(current[schema.features]), current_predictions)
    elif not window.has_logged_predictions:
        source = "none"
    else:
        source = "log"  # the features no longer fit the model: judge what was actually served
    return ScoredRefs(
        reference_uri=model.snapshot_uri,
        current_uri=window.uri,
        reference_predictions_uri=str(reference_predictions),
        current_predictions_uri=str(current_predictions) if current_predictions else None,
        reference_rows=len(reference),
        current_rows=len(current),
        prediction_source=source,
        schema_problems=problems,
    )


def write_predictions(values: Any, path: Path) -> None:
    """Predictions as a one-column Parquet file, row for row with the data they were made on."""
    write_parquet_atomic(pd.DataFrame({PREDICTION: values}), path)


def scored_frames(scored: ScoredRefs) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference and current data with the prediction column each side has."""
    reference = read_parquet(scored.reference_uri)
    reference[PREDICTION] = read_parquet(scored.reference_predictions_uri)[PREDICTION].to_numpy()
    current = read_parquet(scored.current_uri)
    if scored.current_predictions_uri:
        current[PREDICTION] = read_parquet(scored.current_predictions_uri)[PREDICTION].to_numpy()
    return reference, current


# --- Evidently -----------------------------------------------------------------------------------


def sample_rows(frame: pd.DataFrame, max_rows: int | None, seed: int) -> pd.DataFrame:
    """A seeded uniform sample of at most `max_rows` rows (all rows when under the cap)."""
    if max_rows is None or len(frame) <= max_rows:
        return frame
    return frame.sample(n=max_rows, random_state=seed).reset_index(drop=True)


def data_definition(
    schema: FeatureSchema, columns: list[str], config: PipelineConfig, with_prediction: bool
) -> DataDefinition:
    """Column kinds of the drift report as the model sees them (the prediction as its task's)."""
    categorical = [c for c in schema.categorical if c in columns]
    numerical = [c for c in schema.numeric if c in columns]
    if with_prediction:
        (categorical if config.task == TaskType.classification else numerical).append(PREDICTION)
    return DataDefinition(numerical_columns=numerical, categorical_columns=categorical)


def quality_definition(config: PipelineConfig) -> DataDefinition:
    """Target and prediction roles of the quality report (labelled rows only)."""
    pair = [config.target, PREDICTION]
    if config.task == TaskType.classification:
        return DataDefinition(
            categorical_columns=pair,
            classification=[
                MulticlassClassification(target=config.target, prediction_labels=PREDICTION)
            ],
        )
    return DataDefinition(
        numerical_columns=pair,
        regression=[Regression(target=config.target, prediction=PREDICTION)],
    )


def column_drift(column: str, result: Any) -> ColumnDrift:
    """Wrap a ValueDrift result: its score and the verdict of the test Evidently attaches."""
    test = result.tests[0]
    params = test.metric_config.params
    return ColumnDrift(
        column=column,
        drifted=test.status == TestStatus.FAIL,
        score=float(result.value),
        method=str(params.get("method") or ""),
        threshold=params.get("threshold"),
    )


def label_metrics(task_type: TaskType, truth: pd.Series, predicted: pd.Series) -> dict[str, float]:
    """Metrics computable from labels and predicted values alone, named as in training."""
    if task_type == TaskType.regression:
        return regression_metrics(truth, predicted.to_numpy())
    truth, predicted = truth.astype(str), predicted.astype(str)
    return {
        "accuracy": float(skm.accuracy_score(truth, predicted)),
        "f1": float(skm.f1_score(truth, predicted, average="macro", zero_division=0)),
    }


def labelled_rows(frame: pd.DataFrame, config: PipelineConfig) -> pd.DataFrame:
    """Target and prediction of the rows whose label has arrived, both of one type.

    Class labels read back from a log come as floats once some are missing (1.0 beside a
    predicted 1): they take the predictions' integer type, or both sides become text.
    """
    if config.target not in frame.columns or PREDICTION not in frame.columns:
        return pd.DataFrame(columns=[config.target, PREDICTION])
    known = frame[config.target].notna() & frame[PREDICTION].notna()
    rows = frame.loc[known, [config.target, PREDICTION]].reset_index(drop=True)
    labels, predictions = rows[config.target], rows[PREDICTION]
    if config.task == TaskType.regression or labels.dtype == predictions.dtype:
        return rows
    if (
        pd.api.types.is_integer_dtype(predictions)
        and pd.api.types.is_float_dtype(labels)
        and labels.mod(1).eq(0).all()
    ):
        return rows.assign(**{config.target: labels.astype(predictions.dtype)})
    return rows.astype(str)


def quality_change(
    labelled: pd.DataFrame, config: PipelineConfig, baseline: dict[str, float]
) -> QualityChange | None:
    """The primary metric on labelled rows against the training holdout, if enough labels."""
    if len(labelled) < config.monitoring.min_labeled_rows:
        return None
    found = label_metrics(config.task, labelled[config.target], labelled[PREDICTION])
    metric = (
        config.gate.primary_metric if config.gate.primary_metric in found else next(iter(found))
    )
    base = baseline.get(metric)
    change = None
    if base is not None and base != 0:
        worse = found[metric] - base if not higher_is_better(metric) else base - found[metric]
        change = worse / abs(base)
    return QualityChange(
        metric=metric,
        current=found[metric],
        baseline=base,
        relative_change=change,
        labeled_rows=len(labelled),
        current_metrics=found,
    )


def build_report(
    columns: list[str], with_prediction: bool, config: PipelineConfig
) -> tuple[Report, dict[str, ValueDrift], DriftedColumnsCount, ValueDrift | None]:
    """The Evidently drift report: per-feature and prediction drift, and a data summary."""
    cfg = config.monitoring
    drifts = {
        c: ValueDrift(column=c, method=cfg.drift_method, threshold=cfg.drift_threshold)
        for c in columns
    }
    count = DriftedColumnsCount(
        columns=columns,
        drift_share=cfg.drift_share,
        method=cfg.drift_method,
        threshold=cfg.drift_threshold,
    )
    prediction = ValueDrift(column=PREDICTION) if with_prediction else None
    items: list[Any] = [count, *drifts.values(), *([prediction] if prediction else [])]
    items.append(DataSummaryPreset(columns=[*columns, *([PREDICTION] if with_prediction else [])]))
    return Report(items, include_tests=True), drifts, count, prediction


def run_quality_report(
    reference: pd.DataFrame, labelled: pd.DataFrame, config: PipelineConfig
) -> EvidentlySnapshot:
    """Evidently's regression or classification preset on labelled rows against the reference.

    A report of its own on the labelled rows' target and prediction, each side a seeded sample
    of at most `monitoring.quality_report_max_rows` rows.
    """
    cap, seed = config.monitoring.quality_report_max_rows, config.seed
    preset = (
        ClassificationPreset() if config.task == TaskType.classification else RegressionPreset()
    )
    definition = quality_definition(config)
    return Report([preset], include_tests=True).run(
        Dataset.from_pandas(sample_rows(labelled, cap, seed), data_definition=definition),
        Dataset.from_pandas(
            sample_rows(labelled_rows(reference, config), cap, seed), data_definition=definition
        ),
        timestamp=datetime.now(UTC),
    )


def compute_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    config: PipelineConfig,
    problems: list[str],
    baseline: dict[str, float],
    folder: Path | None = None,
) -> tuple[DriftReport, EvidentlySnapshot, EvidentlySnapshot | None]:
    """Run Evidently on (a sample of) both sides and wrap what it found.

    With `folder`, the HTML reports and the snapshots (`report.html`, `evidently-snapshot.json`,
    and where labels arrived `quality.html`, `evidently-quality.json`) are written there.
    """
    schema = reference_schema(reference, config)
    broken = {p.split(":", 1)[0] for p in problems}
    columns = [c for c in schema.features if c not in broken]
    with_prediction = PREDICTION in current.columns and PREDICTION in reference.columns
    labelled = labelled_rows(current, config)
    quality = quality_change(labelled, config, baseline)
    cap, seed = config.monitoring.max_rows, config.seed
    extra = [PREDICTION] if with_prediction else []
    ref_part = sample_rows(reference[[*columns, *extra]], cap, seed)
    cur_part = sample_rows(current[[*columns, *extra]], cap, seed)
    definition = data_definition(schema, columns, config, with_prediction)
    report, drifts, count, prediction = build_report(columns, with_prediction, config)
    snapshot = report.run(
        Dataset.from_pandas(cur_part, data_definition=definition),
        Dataset.from_pandas(ref_part, data_definition=definition),
        timestamp=datetime.now(UTC),
    )
    quality_snapshot = (
        run_quality_report(reference, labelled, config) if quality is not None else None
    )
    context = snapshot.context
    found = [column_drift(c, context.get_metric_result(m)) for c, m in drifts.items()]
    found += [
        ColumnDrift(column=p.split(":", 1)[0], drifted=True, detail=p.split(":", 1)[1].strip())
        for p in problems
    ]
    drifted = float(context.get_metric_result(count).count.value) + len(problems)
    html = quality_html = None
    if folder is not None:
        html = save_snapshot(snapshot, folder, "report.html", "evidently-snapshot.json")
        if quality_snapshot is not None:
            quality_html = save_snapshot(
                quality_snapshot, folder, "quality.html", "evidently-quality.json"
            )
    return (
        DriftReport(
            columns=found,
            drifted_share=drifted / max(1, len(schema.features)),
            prediction=(
                column_drift(PREDICTION, context.get_metric_result(prediction))
                if prediction
                else None
            ),
            quality=quality,
            html_uri=html or "",
            quality_html_uri=quality_html,
            reference_rows=len(reference),
            current_rows=len(current),
            sampled=len(ref_part) < len(reference) or len(cur_part) < len(current),
        ),
        snapshot,
        quality_snapshot,
    )


def save_snapshot(snapshot: EvidentlySnapshot, folder: Path, html: str, data: str) -> str:
    """An Evidently run as HTML (for people) and snapshot JSON (for the workspace)."""
    snapshot.save_html(str(folder / html))
    (folder / data).write_text(snapshot.dumps())
    return str((folder / html).resolve())


@task
def run_drift_report(
    scored: ScoredRefs, model: MonitoredModel, config: PipelineConfig
) -> DriftReport:
    """Evidently reports (HTML and snapshot JSON beside the window): drift, summary, quality."""
    reference, current = scored_frames(scored)
    report, _, _ = compute_drift(
        reference,
        current,
        config,
        scored.schema_problems,
        model.baseline,
        folder=Path(scored.current_uri).parent,
    )
    return report


# --- decision, summary, outputs -----------------------------------------------------------------


def decide(
    report: DriftReport, validation: ValidationSummary, cfg: MonitoringConfig
) -> MonitoringDecision:
    """Every breached threshold, each with the event it raises."""
    breaches: list[Breach] = []
    if report.drifted_share >= cfg.drift_share:
        breaches.append(
            Breach(
                kind="feature-drift",
                event=DRIFT_DETECTED,
                detail=f"{report.drifted_share:.0%} of features drifted "
                f"(threshold {cfg.drift_share:.0%}): {', '.join(report.drifted_columns)}",
            )
        )
    if cfg.prediction_drift and report.prediction is not None and report.prediction.drifted:
        breaches.append(
            Breach(
                kind="prediction-drift",
                event=DRIFT_DETECTED,
                detail=f"predictions drifted ({report.prediction.method} "
                f"{report.prediction.score:.3g} > {report.prediction.threshold})",
            )
        )
    quality = report.quality
    change = quality.relative_change if quality else None
    if quality and change is not None and change > cfg.max_performance_drop:
        breaches.append(
            Breach(
                kind="performance",
                event=PERFORMANCE_DEGRADED,
                detail=f"{quality.metric} {quality.current:.4g} vs holdout "
                f"{quality.baseline:.4g}: {quality.relative_change:.0%} worse "
                f"(limit {cfg.max_performance_drop:.0%}, {quality.labeled_rows} labels)",
            )
        )
    if len(validation.failed) > cfg.max_validation_failures:
        breaches.append(
            Breach(
                kind="validation",
                event=DATA_INVALID,
                detail=f"{len(validation.failed)} scoring expectations failed "
                f"(limit {cfg.max_validation_failures})",
            )
        )
    reason = "; ".join(b.detail for b in breaches) or "all monitoring thresholds hold"
    return MonitoringDecision(
        outcome="alarm" if breaches else "ok", breaches=breaches, reason=reason
    )


@task
def decide_monitoring(
    report: DriftReport, validation: ValidationSummary, config: PipelineConfig
) -> MonitoringDecision:
    """Compare drift, prediction drift, quality and validation with the configured thresholds."""
    return decide(report, validation, config.monitoring)


@task
def summarize_monitoring(
    model: MonitoredModel,
    window: WindowRef,
    config_path: str,
    decision: MonitoringDecision,
    report: DriftReport | None = None,
    validation: ValidationSummary | None = None,
    schema_problems: list[str] | None = None,
) -> DriftSummary:
    """The typed monitoring summary (what the flow returns and the events carry)."""
    failures = [
        f"{f.expectation}" + (f" on {f.column}" if f.column else "") + f": {f.observed}"
        for f in (validation.failed if validation else [])
    ]
    prediction = report.prediction if report else None
    return DriftSummary(
        model_name=model.name,
        model_version=model.version,
        alias=model.alias,
        config_path=config_path,
        window=window.source,
        current_rows=window.rows,
        labeled_rows=window.labeled_rows,
        reference_snapshot=model.snapshot_uri,
        drifted_share=report.drifted_share if report else 0.0,
        drifted_columns=report.drifted_columns if report else [],
        prediction_drift=prediction.drifted if prediction else None,
        prediction_drift_score=prediction.score if prediction else None,
        quality=report.quality if report else None,
        validation_success=validation.success if validation else None,
        validation_failures=failures,
        schema_problems=schema_problems or [],
        decision=decision,
        report_uri=report.html_uri if report else None,
        quality_report_uri=report.quality_html_uri if report else None,
    )


@task
def nothing_to_monitor(window: WindowRef) -> MonitoringDecision:
    """The outcome of an empty window: nothing to judge, no event."""
    return MonitoringDecision(
        outcome="nothing-to-monitor", reason=f"no rows in the current window ({window.source})"
    )


@task(**IO_RETRIES)
def log_monitoring_run(
    summary: DriftSummary, report: DriftReport, config: PipelineConfig, settings: Settings
) -> DriftSummary:
    """A monitoring MLflow run tagged with the model version: key metrics, HTML, summary JSON."""
    client = mlflow_client(settings)
    experiment_id = ensure_experiment(client, f"{config.experiment}-monitoring", settings)
    tags = {
        "mlops.run_type": "monitoring",
        "model_name": summary.model_name,
        "model_version": summary.model_version,
        "model_alias": summary.alias,
        "reference_snapshot": summary.reference_snapshot,
        "window": summary.window,
        "decision": summary.decision.outcome,
        "prefect.flow_run_id": str(flow_run.get_id() or "none"),
    }
    run = client.create_run(
        experiment_id, run_name=f"monitor-{summary.model_name}-v{summary.model_version}", tags=tags
    )
    run_id = run.info.run_id
    values = {
        "drifted_share": summary.drifted_share,
        "drifted_columns": float(len(summary.drifted_columns)),
        "current_rows": float(summary.current_rows),
        "labeled_rows": float(summary.labeled_rows),
        "validation_failures": float(len(summary.validation_failures)),
        **{f"drift_{c.column}": c.score for c in report.columns if c.score is not None},
    }
    if summary.prediction_drift_score is not None:
        values["prediction_drift_score"] = summary.prediction_drift_score
    if summary.quality is not None:
        values.update({f"current_{k}": v for k, v in summary.quality.current_metrics.items()})
        if summary.quality.relative_change is not None:
            values["quality_relative_change"] = summary.quality.relative_change
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in values.items()])
    folder = Path(report.html_uri).parent
    linked = summary.model_copy(update={"mlflow_run_id": run_id})
    (folder / "summary.json").write_text(linked.model_dump_json(indent=2))
    for name in ("report.html", "quality.html", "summary.json"):
        if (folder / name).is_file():
            client.log_artifact(run_id, str(folder / name), "monitoring")
    client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))
    client.set_model_version_tag(
        summary.model_name, summary.model_version, "monitoring.last_run_id", run_id
    )
    client.set_model_version_tag(
        summary.model_name,
        summary.model_version,
        "monitoring.last_outcome",
        summary.decision.outcome,
    )
    return linked


@task
def add_to_workspace(summary: DriftSummary, settings: Settings) -> DriftSummary:
    """Add the Evidently snapshots to the model's local workspace project (drift over time)."""
    from evidently.ui.workspace import Workspace

    folder = Path(str(summary.report_uri)).parent
    workspace = Workspace(str(workspace_root(settings)))
    project = ensure_project(workspace, f"{EVIDENTLY_PROJECT_PREFIX}-{summary.model_name}")
    name = f"v{summary.model_version} {summary.window}"
    ids = {}
    for key, data in (
        ("evidently_snapshot_id", "evidently-snapshot.json"),
        ("evidently_quality_snapshot_id", "evidently-quality.json"),
    ):
        if (folder / data).is_file():
            snapshot = EvidentlySnapshot.load(str(folder / data))
            ref = workspace.add_run(project.id, snapshot, include_data=False, name=name)
            ids[key] = str(ref.id)
    return summary.model_copy(update=ids)


def ensure_project(workspace: Any, name: str) -> Any:
    """The workspace project `name`, created with drift and quality panels on first use."""
    from evidently.sdk.models import PanelMetric
    from evidently.sdk.panels import line_plot_panel

    found = workspace.search_project(name)
    if found:
        return found[0]
    project = workspace.create_project(
        name, description="monitoring runs of the prefect-mlops flow"
    )
    panels = [
        line_plot_panel(
            "Share of drifted features",
            [
                PanelMetric(
                    legend="share",
                    metric="DriftedColumnsCount",
                    metric_labels={"value_type": "share"},
                )
            ],
            size="half",
        ),
        line_plot_panel(
            "Prediction drift score",
            [
                PanelMetric(
                    legend="prediction", metric="ValueDrift", metric_labels={"column": PREDICTION}
                )
            ],
            size="half",
        ),
        line_plot_panel(
            "RMSE (regression)", [PanelMetric(legend="rmse", metric="RMSE")], size="half"
        ),
        line_plot_panel(
            "Accuracy (classification)",
            [PanelMetric(legend="accuracy", metric="Accuracy")],
            size="half",
        ),
    ]
    for panel in panels:
        project.dashboard.add_panel(panel, tab="Monitoring")
    return project


def markdown_summary(summary: DriftSummary) -> str:
    """The monitoring outcome for the Prefect UI."""
    rows = [
        ("model", f"{summary.model_name} v{summary.model_version} (@{summary.alias})"),
        (
            "window",
            f"{summary.window}: {summary.current_rows} rows, {summary.labeled_rows} labelled",
        ),
        ("decision", f"**{summary.decision.outcome}**: {summary.decision.reason}"),
        ("drifted features", f"{summary.drifted_share:.0%} {summary.drifted_columns}"),
        (
            "prediction drift",
            f"{summary.prediction_drift} (score {summary.prediction_drift_score})",
        ),
        (
            "quality",
            f"{summary.quality.metric} {summary.quality.current:.4g} vs holdout "
            f"{summary.quality.baseline}"
            if summary.quality
            else "no labels (drift only)",
        ),
        (
            "validation",
            "passed"
            if summary.validation_success
            else "; ".join(summary.validation_failures) or "-",
        ),
        ("schema", "; ".join(summary.schema_problems) or "unchanged"),
        ("report", f"[Evidently HTML](file://{summary.report_uri})" if summary.report_uri else "-"),
        (
            "quality report",
            f"[Evidently HTML](file://{summary.quality_report_uri})"
            if summary.quality_report_uri
            else "-",
        ),
        ("MLflow run", summary.mlflow_run_id or "-"),
        ("events", ", ".join(summary.events) or "none"),
    ]
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    return f"## Monitoring: {summary.decision.outcome}\n\n| | |\n|---|---|\n{table}\n"


@task
def publish_monitoring_summary(summary: DriftSummary) -> None:
    """Publish the decision and links (Evidently HTML, MLflow run) as a Prefect artifact."""
    create_markdown_artifact(
        markdown=markdown_summary(summary),
        key=artifact_key("monitoring", summary.model_name),
        description=f"monitoring of {summary.model_name} v{summary.model_version}",
    )


def event_payload(summary: DriftSummary) -> dict[str, Any]:
    """The summary as JSON, the payload of every monitoring event."""
    return json.loads(summary.model_dump_json(exclude={"events"}))


@task
def emit_monitoring_events(summary: DriftSummary) -> DriftSummary:
    """Emit one Prefect event per kind of breach; the resource is the registered model."""
    resource = {
        "prefect.resource.id": model_resource_id(summary.model_name),
        "prefect.resource.name": summary.model_name,
        "prefect.resource.role": "model",
        "mlops.model.version": summary.model_version,
        "mlops.model.alias": summary.alias,
    }
    related = []
    if summary.mlflow_run_id:
        related.append(
            {
                "prefect.resource.id": f"mlflow.run.{summary.mlflow_run_id}",
                "prefect.resource.role": "monitoring-run",
            }
        )
    payload = event_payload(summary)
    ids = []
    for name in summary.decision.events:
        event = emit_event(event=name, resource=resource, related=related, payload=payload)
        if event is not None:
            ids.append(str(event.id))
    return summary.model_copy(update={"events": ids})
