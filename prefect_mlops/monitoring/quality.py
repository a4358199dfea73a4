"""Quality on the labels that have arrived, against the version's training holdout.

Class labels come in every type scikit-learn trains on (text, integers, booleans); labels read
back from the prediction log or a file are brought to the type of the model's predictions
before anything compares them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from prefect_mlops import metrics
from prefect_mlops.config import PipelineConfig, TaskType
from prefect_mlops.metrics import Label, higher_is_better, regression_metrics
from prefect_mlops.monitoring.records import PREDICTION, PROBABILITY_PREFIX, QualityChange

# The metric judged when the primary one needs probabilities (ROC/PR AUC, log loss) that
# labels and predicted classes alone cannot give: fair to the rare class, unlike accuracy.
LABEL_ONLY_CLASSIFICATION_METRIC = "balanced_accuracy"
_BOOLEAN_WORDS = {"true": True, "false": False, "1": True, "0": False}


def label_metrics(task_type: TaskType, truth: pd.Series, predicted: pd.Series) -> dict[str, float]:
    """Metrics computable from labels and predicted values alone, named as in training."""
    if task_type == TaskType.regression:
        return regression_metrics(truth, predicted.to_numpy())
    classes = np.unique(np.concatenate([truth.to_numpy(), predicted.to_numpy()]))
    return metrics.label_metrics(truth, predicted, classes)


def probability_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The `proba:<class>` columns of a scored frame (none when it has no probabilities)."""
    return frame[[c for c in frame.columns if str(c).startswith(PROBABILITY_PREFIX)]]


def probability_metrics(
    labelled: pd.DataFrame,
    config: PipelineConfig,
    classes: list[Label] | None,
    positive_label: Label | None,
) -> dict[str, float]:
    """ROC AUC, PR AUC and log loss of labelled rows with the model's class probabilities,
    named and computed as training does (empty without probabilities or classes).

    Labels take the type of the model's classes first (as with its predictions), so `"1"`
    read back from a log is the class `1`; a label the model has no class for leaves them out.
    """
    probabilities = probability_frame(labelled)
    if config.task != TaskType.classification or not classes or probabilities.empty:
        return {}
    if len(classes) != probabilities.shape[1] or probabilities.isna().any().any():
        return {}
    model_classes = pd.Series(classes)
    truth = as_class_type(labelled[config.target], model_classes)
    if truth is None or not truth.isin(classes).all():
        return {}
    found = metrics.classification_metrics(
        truth,
        labelled[PREDICTION].to_numpy(),
        probabilities.to_numpy(dtype=float),
        np.asarray(model_classes),
        positive_label if positive_label in classes else None,
    )
    return {k: found[k] for k in ("roc_auc", "pr_auc", "log_loss") if k in found}


def _as_boolean(value: Any) -> bool | None:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    return _BOOLEAN_WORDS.get(str(value).strip().lower())


def _is_text(values: pd.Series) -> bool:
    return pd.api.types.infer_dtype(values, skipna=True) == "string"


def as_class_type(labels: pd.Series, predictions: pd.Series) -> pd.Series | None:
    """`labels` in the type of `predictions` (the model's classes), or None when they do not fit.

    The log keeps labels as JSON, so they come back as objects, and as floats once some are
    missing (1.0 beside a predicted 1); `true`, `"True"` and `1` are one boolean class.
    """
    if _is_text(predictions):
        if _is_text(labels):
            return labels
        # An integral float read back from a log stands for the integer it was sent as.
        return labels.map(
            lambda v: str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)
        )
    if labels.dtype == predictions.dtype:
        return labels
    if pd.api.types.is_bool_dtype(predictions):
        flags = labels.map(_as_boolean)
        return flags.astype(bool) if flags.notna().all() else None
    if pd.api.types.is_integer_dtype(predictions):
        numbers = pd.to_numeric(labels, errors="coerce")
        if numbers.notna().all() and numbers.mod(1).eq(0).all():
            return numbers.astype(predictions.dtype)
        return None
    return None


def labelled_rows(frame: pd.DataFrame, config: PipelineConfig) -> pd.DataFrame:
    """Target and prediction of the rows whose label has arrived, both of one type.

    Labels take the predictions' type (`as_class_type`); when they cannot, both sides become
    text, so a label the model never predicts still counts as a miss instead of failing.
    """
    if config.target not in frame.columns or PREDICTION not in frame.columns:
        return pd.DataFrame(columns=[config.target, PREDICTION])
    known = frame[config.target].notna() & frame[PREDICTION].notna()
    rows = frame.loc[known, [config.target, PREDICTION]].reset_index(drop=True)
    if config.task == TaskType.regression:
        return rows
    probabilities = probability_frame(frame).loc[known].reset_index(drop=True)
    labels = as_class_type(rows[config.target], rows[PREDICTION])
    if labels is None:
        return pd.concat([rows.astype(str), probabilities], axis=1)
    return pd.concat([rows.assign(**{config.target: labels}), probabilities], axis=1)


def positive_label_for(
    reference: pd.DataFrame, config: PipelineConfig, recorded: Label | None
) -> Label | None:
    """The binary positive class of the quality report: the one the version's training recorded,
    else the config's (checked against the reference classes), else the reference's minority
    class; None for multiclass. Typed like the reference target (text when it is text)."""
    truth = reference[config.target]
    positive = recorded  # binary by training, even where the reference holds one class
    if positive is None:
        classes = np.unique(truth.to_numpy())
        if len(classes) != 2:
            return None
        positive = metrics.resolve_positive_label(classes, truth, config.positive_label)
    if _is_text(truth) and not isinstance(positive, str):
        return str(positive)
    return positive


def quality_change(
    labelled: pd.DataFrame,
    config: PipelineConfig,
    baseline: dict[str, float],
    classes: list[Label] | None = None,
    positive_label: Label | None = None,
) -> QualityChange | None:
    """The primary metric on labelled rows against the training holdout, if enough labels.

    With the model's class probabilities (and `classes`, their order) a classifier also gets
    ROC AUC, PR AUC and log loss; a primary metric that needs them and has none is replaced
    by balanced accuracy.
    """
    if len(labelled) < config.monitoring.min_labeled_rows:
        return None
    found = label_metrics(config.task, labelled[config.target], labelled[PREDICTION])
    found.update(probability_metrics(labelled, config, classes, positive_label))
    fallback = (
        LABEL_ONLY_CLASSIFICATION_METRIC
        if config.task == TaskType.classification
        else next(iter(found))
    )
    metric = config.gate.primary_metric if config.gate.primary_metric in found else fallback
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
        current_metrics={k: v for k, v in found.items() if np.isfinite(v)},
    )
