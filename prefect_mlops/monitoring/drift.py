"""The Evidently 0.7 adapter: data definitions, the drift and quality reports, typed results.

Evidently's results are wrapped in the typed records of `prefect_mlops.monitoring` right where
they are read; nothing else in the project touches an Evidently object.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
from evidently import DataDefinition, Dataset, MulticlassClassification, Regression, Report
from evidently.core.metric_types import TestStatus
from evidently.core.report import Snapshot as EvidentlySnapshot
from evidently.metrics import DriftedColumnsCount, ValueDrift
from evidently.presets import ClassificationPreset, DataSummaryPreset, RegressionPreset

from prefect_mlops.config import PipelineConfig, TaskType
from prefect_mlops.monitoring.quality import labelled_rows, quality_change
from prefect_mlops.monitoring.records import PREDICTION, ColumnDrift, DriftReport
from prefect_mlops.monitoring.scoring import reference_schema
from prefect_mlops.results import FeatureSchema

# Files of one run's folder: HTML for people, snapshot JSON for the Evidently workspace.
DRIFT_HTML, DRIFT_SNAPSHOT = "report.html", "evidently-snapshot.json"
QUALITY_HTML, QUALITY_SNAPSHOT = "quality.html", "evidently-quality.json"


class DriftRun(NamedTuple):
    """The typed report and the Evidently snapshots it was read from."""

    report: DriftReport
    snapshot: EvidentlySnapshot
    quality_snapshot: EvidentlySnapshot | None


class DriftMetrics(NamedTuple):
    """The metrics of a drift report whose results are read back by column."""

    report: Report
    columns: dict[str, ValueDrift]
    count: DriftedColumnsCount
    prediction: ValueDrift | None


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


def schema_drift(problem: str) -> ColumnDrift:
    """A schema problem ("column: what changed") counted as a drifted column."""
    column, detail = problem.split(":", 1)
    return ColumnDrift(column=column, drifted=True, detail=detail.strip())


def build_report(columns: list[str], with_prediction: bool, config: PipelineConfig) -> DriftMetrics:
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
    return DriftMetrics(Report(items, include_tests=True), drifts, count, prediction)


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
) -> DriftRun:
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
    metrics = build_report(columns, with_prediction, config)
    snapshot = metrics.report.run(
        Dataset.from_pandas(cur_part, data_definition=definition),
        Dataset.from_pandas(ref_part, data_definition=definition),
        timestamp=datetime.now(UTC),
    )
    quality_snapshot = (
        run_quality_report(reference, labelled, config) if quality is not None else None
    )
    context = snapshot.context
    found = [column_drift(c, context.get_metric_result(m)) for c, m in metrics.columns.items()]
    found += [schema_drift(p) for p in problems]
    drifted = float(context.get_metric_result(metrics.count).count.value) + len(problems)
    html = quality_html = None
    if folder is not None:
        html = save_snapshot(snapshot, folder, DRIFT_HTML, DRIFT_SNAPSHOT)
        if quality_snapshot is not None:
            quality_html = save_snapshot(quality_snapshot, folder, QUALITY_HTML, QUALITY_SNAPSHOT)
    prediction = metrics.prediction
    report = DriftReport(
        columns=found,
        drifted_share=drifted / max(1, len(schema.features)),
        prediction=(
            column_drift(PREDICTION, context.get_metric_result(prediction)) if prediction else None
        ),
        quality=quality,
        schema_problems=problems,
        html_uri=html or "",
        quality_html_uri=quality_html,
        reference_rows=len(reference),
        current_rows=len(current),
        sampled=len(ref_part) < len(reference) or len(cur_part) < len(current),
    )
    return DriftRun(report, snapshot, quality_snapshot)


def save_snapshot(snapshot: EvidentlySnapshot, folder: Path, html: str, data: str) -> str:
    """An Evidently run as HTML (for people) and snapshot JSON (for the workspace)."""
    snapshot.save_html(str(folder / html))
    (folder / data).write_text(snapshot.dumps())
    return str((folder / html).resolve())
