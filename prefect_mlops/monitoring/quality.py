"""Quality on the labels that have arrived, against the version's training holdout."""

from __future__ import annotations

import pandas as pd
from sklearn import metrics as skm

from prefect_mlops.config import PipelineConfig, TaskType
from prefect_mlops.metrics import higher_is_better, regression_metrics
from prefect_mlops.monitoring.records import PREDICTION, QualityChange


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
