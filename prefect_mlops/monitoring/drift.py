"""The Evidently 0.7 adapter: data definitions, the drift and quality reports, typed results.

Evidently's results are wrapped in the typed records of `prefect_mlops.monitoring` right where
they are read; nothing else in the project touches an Evidently object.

Datetime features are compared on the parts the model computes from them (the project's
`DatetimeParts`, e.g. `date_month`): Evidently takes no date-typed column. A quality report
Evidently cannot produce is a stated problem of the report; the drift results stand.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
from evidently import (
    BinaryClassification,
    DataDefinition,
    Dataset,
    MulticlassClassification,
    Regression,
    Report,
)
from evidently.core.metric_types import TestStatus
from evidently.core.report import Snapshot as EvidentlySnapshot
from evidently.metrics import DriftedColumnsCount, ValueDrift
from evidently.presets import (
    ClassificationPreset,
    DataDriftPreset,
    DataSummaryPreset,
    RegressionPreset,
)

from prefect_mlops.config import PipelineConfig, TaskType
from prefect_mlops.metrics import Label
from prefect_mlops.monitoring.quality import (
    labelled_rows,
    positive_label_for,
    probability_frame,
    quality_change,
)
from prefect_mlops.monitoring.records import (
    PREDICTION,
    PROBABILITY_PREFIX,
    ColumnDrift,
    DriftReport,
    QualityChange,
    SnapshotKind,
    SnapshotLabels,
)
from prefect_mlops.monitoring.scoring import reference_schema
from prefect_mlops.results import FeatureSchema
from prefect_mlops.transformers import DatetimeParts

logger = logging.getLogger(__name__)

# Files of one run's folder: HTML for people, snapshot JSON for the Evidently workspace.
DRIFT_HTML, DRIFT_SNAPSHOT = "report.html", "evidently-snapshot.json"
QUALITY_HTML, QUALITY_SNAPSHOT = "quality.html", "evidently-quality.json"


class DriftRun(NamedTuple):
    """The typed report and the Evidently snapshots it was read from."""

    report: DriftReport
    snapshot: EvidentlySnapshot
    quality_snapshot: EvidentlySnapshot | None


class DatetimeColumns(NamedTuple):
    """Datetime features replaced by their parts on both sides, and what could not be."""

    reference: pd.DataFrame
    current: pd.DataFrame
    parts: dict[str, str]  # part column -> the datetime feature it comes from
    unusable: list[ColumnDrift]  # features with no comparable parts, and why


class QualityRun(NamedTuple):
    """The quality change on labelled rows, Evidently's quality report, and what failed."""

    change: QualityChange | None
    snapshot: EvidentlySnapshot | None
    problems: list[str]


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


def datetime_columns(
    reference: pd.DataFrame, current: pd.DataFrame, dates: list[str]
) -> DatetimeColumns:
    """Each datetime feature as the numeric parts the model's `DatetimeParts` computes from it.

    A feature none of whose reference values parse as a date is skipped (nothing to compare
    against); one whose current values no longer parse is counted as drifted.
    """
    ref_out, cur_out = reference.drop(columns=dates), current.drop(columns=dates)
    parts: dict[str, str] = {}
    unusable: list[ColumnDrift] = []
    for column in dates:
        step = DatetimeParts().fit(reference[[column]])
        names = [str(n) for n in step.get_feature_names_out()]
        ref_parts = pd.DataFrame(step.transform(reference[[column]]), columns=names)
        cur_parts = pd.DataFrame(step.transform(current[[column]]), columns=names)
        if ref_parts.isna().all().all():
            unusable.append(
                ColumnDrift(
                    column=column,
                    drifted=False,
                    detail="skipped: no reference value parses as a date, nothing to compare",
                )
            )
            continue
        if len(cur_parts) and cur_parts.isna().all().all():
            unusable.append(
                ColumnDrift(column=column, drifted=True, detail="no current value parses as a date")
            )
            continue
        taken = [n for n in names if n in ref_out.columns]
        if taken:
            unusable.append(
                ColumnDrift(
                    column=column,
                    drifted=False,
                    detail=f"skipped: its parts {taken} clash with feature names",
                )
            )
            continue
        ref_out[names] = ref_parts.set_index(ref_out.index)
        cur_out[names] = cur_parts.set_index(cur_out.index)
        parts.update(dict.fromkeys(names, column))
    return DatetimeColumns(ref_out, cur_out, parts, unusable)


def data_definition(
    schema: FeatureSchema, columns: list[str], config: PipelineConfig, with_prediction: bool
) -> DataDefinition:
    """Column kinds of the drift report as the model sees them (the prediction as its task's;
    datetime parts are numbers)."""
    categorical = [c for c in schema.categorical if c in columns]
    numerical = [c for c in columns if c not in categorical]
    if with_prediction:
        (categorical if config.task == TaskType.classification else numerical).append(PREDICTION)
    return DataDefinition(numerical_columns=numerical, categorical_columns=categorical)


def quality_definition(
    config: PipelineConfig, positive_label: Label | None, probability: str | None = None
) -> DataDefinition:
    """Target and prediction roles of the quality report (labelled rows only).

    Evidently treats two classes as binary and looks for `pos_label` (1 unless told), so a
    binary classifier's positive class is passed; more classes are multiclass. `probability`
    is the column of the positive class's probability, when both sides have it: Evidently then
    adds ROC AUC, log loss and the precision-recall curve and table.
    """
    pair = [config.target, PREDICTION]
    if config.task == TaskType.classification:
        task: BinaryClassification | MulticlassClassification = (
            MulticlassClassification(target=config.target, prediction_labels=PREDICTION)
            if positive_label is None
            else BinaryClassification(
                target=config.target,
                prediction_labels=PREDICTION,
                prediction_probas=probability,
                # Evidently types it `str` but compares it with the labels: keep their type.
                pos_label=positive_label,
            )
        )
        numbers = [probability] if probability and positive_label is not None else []
        return DataDefinition(
            categorical_columns=pair, numerical_columns=numbers, classification=[task]
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


def part_of(drift: ColumnDrift, parts: dict[str, str]) -> ColumnDrift:
    """A datetime part's drift, saying which feature it is a part of (others unchanged)."""
    feature = parts.get(drift.column)
    if feature is None:
        return drift
    part = drift.column.removeprefix(f"{feature}_")
    return drift.model_copy(update={"detail": f"{part} of datetime feature {feature}"})


def schema_drift(problem: str) -> ColumnDrift:
    """A schema problem ("column: what changed") counted as a drifted column."""
    column, detail = problem.split(":", 1)
    return ColumnDrift(column=column, drifted=True, detail=detail.strip())


def build_report(columns: list[str], with_prediction: bool, config: PipelineConfig) -> DriftMetrics:
    """The Evidently drift report, summary first: the share of drifted features and one table
    of every feature's drift (Evidently's data drift preset), then prediction drift, then the
    data summary. The per-feature results are read back by column from the preset's metrics.
    """
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
    preset = DataDriftPreset(
        columns=columns,
        drift_share=cfg.drift_share,
        method=cfg.drift_method,
        threshold=cfg.drift_threshold,
    )
    prediction = ValueDrift(column=PREDICTION) if with_prediction else None
    items: list[Any] = [preset, *([prediction] if prediction else [])]
    items.append(DataSummaryPreset(columns=[*columns, *([PREDICTION] if with_prediction else [])]))
    return DriftMetrics(Report(items, include_tests=True), drifts, count, prediction)


def run_options(
    labels: SnapshotLabels | None, kind: SnapshotKind, **extra: str | int
) -> dict[str, Any]:
    """`Report.run` keywords naming the snapshot (name, tags, metadata), when labelled."""
    if labels is None:
        return {}
    return {
        "name": labels.name(kind),
        "tags": labels.tags(kind),
        "metadata": labels.metadata(kind, **extra),
    }


def positive_probability(
    reference: pd.DataFrame, labelled: pd.DataFrame, positive: Label | None
) -> str | None:
    """The positive class's probability column, when both sides of a binary report have it."""
    if positive is None:
        return None
    column = f"{PROBABILITY_PREFIX}{positive}"
    both = set(probability_frame(reference).columns) & set(probability_frame(labelled).columns)
    return column if column in both else None


def run_quality_report(
    reference: pd.DataFrame,
    labelled: pd.DataFrame,
    config: PipelineConfig,
    positive_label: Label | None = None,
    labels: SnapshotLabels | None = None,
    reference_kind: str = "training snapshot",
) -> EvidentlySnapshot:
    """Evidently's regression or classification preset on labelled rows against the reference.

    A report of its own on the labelled rows' target and prediction (and a binary classifier's
    positive-class probability where both sides have it), each side a seeded sample of at most
    `monitoring.quality_report_max_rows` rows. `reference_kind` names the reference side in the
    snapshot's metadata (the version's holdout, or its training snapshot without one).
    """
    cap, seed = config.monitoring.quality_report_max_rows, config.seed
    preset = (
        ClassificationPreset() if config.task == TaskType.classification else RegressionPreset()
    )
    reference_rows = labelled_rows(reference, config)
    positive = (
        positive_label_for(reference_rows, config, positive_label)
        if config.task == TaskType.classification
        else None
    )
    probability = positive_probability(reference_rows, labelled, positive)
    definition = quality_definition(config, positive, probability)
    kept = [config.target, PREDICTION, *([probability] if probability else [])]
    options = run_options(
        labels,
        "quality",
        reference=reference_kind,
        reference_rows=len(reference_rows),
        labelled_rows=len(labelled),
    )
    return Report([preset], include_tests=True).run(
        Dataset.from_pandas(sample_rows(labelled[kept], cap, seed), data_definition=definition),
        Dataset.from_pandas(
            sample_rows(reference_rows[kept], cap, seed), data_definition=definition
        ),
        timestamp=datetime.now(UTC),
        **options,
    )


def run_quality(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    config: PipelineConfig,
    baseline: dict[str, float],
    positive_label: Label | None,
    classes: list[Label] | None = None,
    labels: SnapshotLabels | None = None,
    reference_kind: str = "training snapshot",
) -> QualityRun:
    """The quality change and Evidently's quality report, each failure a stated problem.

    Neither may cost the drift results computed beside them, so a failure is caught here,
    logged with its traceback, and stated in the report (issue: a label type Evidently did not
    expect lost a whole monitoring run).
    """
    labelled = labelled_rows(current, config)
    problems: list[str] = []
    try:
        change = quality_change(labelled, config, baseline, classes, positive_label)
    except Exception as exc:  # stated in the report, see the docstring
        logger.warning("quality of %s not computed", config.name, exc_info=True)
        problems.append(f"quality not computed on {len(labelled)} labels: {_cause(exc)}")
        return QualityRun(None, None, problems)
    if change is None:
        return QualityRun(None, None, problems)
    try:
        snapshot = run_quality_report(
            reference, labelled, config, positive_label, labels, reference_kind
        )
    except Exception as exc:  # stated in the report, see the docstring
        logger.warning("Evidently quality report of %s failed", config.name, exc_info=True)
        problems.append(f"quality report not produced by Evidently: {_cause(exc)}")
        return QualityRun(change, None, problems)
    return QualityRun(change, snapshot, problems)


def _cause(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def compute_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    config: PipelineConfig,
    problems: list[str],
    baseline: dict[str, float],
    folder: Path | None = None,
    positive_label: Label | None = None,
    holdout: pd.DataFrame | None = None,
    classes: list[Label] | None = None,
    labels: SnapshotLabels | None = None,
) -> DriftRun:
    """Run Evidently on (a sample of) both sides and wrap what it found.

    With `folder`, the HTML reports and the snapshots (`report.html`, `evidently-snapshot.json`,
    and where labels arrived `quality.html`, `evidently-quality.json`) are written there.
    `positive_label` is the binary positive class the version's training recorded; `holdout`
    (its holdout rows with predictions) is the quality report's reference side, which is the
    training snapshot (partly in-sample) without it. `classes` orders a classifier's
    probability columns (`proba:<class>`); `labels` name, tag and describe both snapshots.
    """
    schema = reference_schema(reference, config)
    broken = {p.split(":", 1)[0] for p in problems}
    features = [c for c in schema.features if c not in broken]
    dates = [c for c in schema.datetime if c in features]
    with_prediction = PREDICTION in current.columns and PREDICTION in reference.columns
    quality_reference = reference if holdout is None else holdout
    reference_kind = "training snapshot" if holdout is None else "holdout"
    quality = run_quality(
        quality_reference,
        current,
        config,
        baseline,
        positive_label,
        classes,
        labels,
        f"{reference_kind} ({len(quality_reference)} rows)",
    )
    cap, seed = config.monitoring.max_rows, config.seed
    extra = [PREDICTION] if with_prediction else []
    ref_part = sample_rows(reference[[*features, *extra]], cap, seed)
    cur_part = sample_rows(current[[*features, *extra]], cap, seed)
    expanded = datetime_columns(ref_part, cur_part, dates)
    columns = [c for c in features if c not in dates] + list(expanded.parts)
    definition = data_definition(schema, columns, config, with_prediction)
    metrics = build_report(columns, with_prediction, config)
    snapshot = metrics.report.run(
        Dataset.from_pandas(expanded.current[[*columns, *extra]], data_definition=definition),
        Dataset.from_pandas(expanded.reference[[*columns, *extra]], data_definition=definition),
        timestamp=datetime.now(UTC),
        **run_options(labels, "drift", reference=f"training snapshot ({len(reference)} rows)"),
    )
    context = snapshot.context
    found = [column_drift(c, context.get_metric_result(m)) for c, m in metrics.columns.items()]
    found = [part_of(c, expanded.parts) for c in found]
    found += expanded.unusable + [schema_drift(p) for p in problems]
    # A feature drifted when its column, one of its datetime parts or its schema did.
    drifted = {expanded.parts.get(c.column, c.column) for c in found if c.drifted}
    html = quality_html = None
    if folder is not None:
        html = save_snapshot(snapshot, folder, DRIFT_HTML, DRIFT_SNAPSHOT)
        if quality.snapshot is not None:
            quality_html = save_snapshot(quality.snapshot, folder, QUALITY_HTML, QUALITY_SNAPSHOT)
    prediction = metrics.prediction
    skipped = [f"{c.column}: {c.detail}" for c in expanded.unusable if not c.drifted]
    report = DriftReport(
        columns=found,
        drifted_share=len(drifted) / max(1, len(schema.features)),
        prediction=(
            column_drift(PREDICTION, context.get_metric_result(prediction)) if prediction else None
        ),
        quality=quality.change,
        schema_problems=problems,
        problems=[*skipped, *quality.problems],
        html_uri=html or "",
        quality_html_uri=quality_html,
        reference_rows=len(reference),
        current_rows=len(current),
        sampled=len(ref_part) < len(reference) or len(cur_part) < len(current),
    )
    return DriftRun(report, snapshot, quality.snapshot)


def save_snapshot(snapshot: EvidentlySnapshot, folder: Path, html: str, data: str) -> str:
    """An Evidently run as HTML (for people) and snapshot JSON (for the workspace)."""
    snapshot.save_html(str(folder / html))
    (folder / data).write_text(snapshot.dumps())
    return str((folder / html).resolve())
