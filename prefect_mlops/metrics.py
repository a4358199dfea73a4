"""Holdout metrics per task type, their direction, and the matching scikit-learn scorers.

Classification metrics hold for any label type scikit-learn accepts (text, integers, booleans).
Binary metrics that need a positive class (PR AUC) take it from `resolve_positive_label`: the
config's `positive_label`, else the minority class, so an imbalanced problem is judged on the
rare class by default.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.preprocessing import label_binarize

from prefect_mlops.errors import ConfigError

# A class label as the config, MLflow tags and JSON carry it.
Label = str | int | bool
# The training run's tag holding a binary classifier's positive class, as JSON ("Yes", 1, true).
POSITIVE_LABEL_TAG = "positive_label"

REGRESSION_METRICS: dict[str, bool] = {"rmse": False, "mae": False, "r2": True}
CLASSIFICATION_METRICS: dict[str, bool] = {
    "accuracy": True,
    "balanced_accuracy": True,
    "f1": True,
    "roc_auc": True,
    "pr_auc": True,
    "log_loss": False,
}
# One recall per class, `recall_<class>`: gate thresholds may name them; they are not ranked on.
RECALL_PREFIX = "recall_"
_UNSAFE_KEY_CHARS = re.compile(r"[^A-Za-z0-9_.-]")
# Scorer names for cross-validation; scikit-learn negates losses so that higher is better.
_SCORERS = {
    "rmse": "neg_root_mean_squared_error",
    "mae": "neg_mean_absolute_error",
    "r2": "r2",
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced_accuracy",
    "f1": "f1_macro",
    "roc_auc": "roc_auc_ovr_weighted",
    "pr_auc": "average_precision",
    "log_loss": "neg_log_loss",
}


def metric_names(task: str) -> list[str]:
    """The holdout metrics computed for a task type (besides per-class `recall_<class>`)."""
    table = REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS
    return list(table)


def is_class_recall(metric: str) -> bool:
    """True for a per-class recall key, e.g. `recall_Yes`."""
    return metric.startswith(RECALL_PREFIX) and len(metric) > len(RECALL_PREFIX)


def recall_key(label: Any) -> str:
    """The MLflow-safe metric key of one class's recall (`recall_Yes`, `recall_1`, `recall_True`).

    Characters MLflow or a URL would trip on become `_`.
    """
    return RECALL_PREFIX + _UNSAFE_KEY_CHARS.sub("_", str(label))


def higher_is_better(metric: str) -> bool:
    """Direction of a metric: True when a larger value is a better model."""
    if is_class_recall(metric):
        return True
    return {**REGRESSION_METRICS, **CLASSIFICATION_METRICS}[metric]


def scorer_name(metric: str) -> str:
    """The scikit-learn scoring string used to cross-validate on a metric."""
    return _SCORERS[metric]


def scorer(metric: str, positive_label: Label | None = None) -> str | Callable[..., float]:
    """The scikit-learn scorer of a metric; binary PR AUC scores the given positive class.

    scikit-learn's `average_precision` string takes `pos_label=1`, which text labels ("No" /
    "Yes") do not have, so binary PR AUC gets a scorer bound to the positive label.
    """
    if metric == "pr_auc" and positive_label is not None:
        return skm.make_scorer(
            skm.average_precision_score, response_method="predict_proba", pos_label=positive_label
        )
    return scorer_name(metric)


def cv_score_to_metric(metric: str, score: float) -> float:
    """Turn a scikit-learn CV score back into the metric's own sign."""
    return -score if _SCORERS[metric].startswith("neg_") else score


def is_better(metric: str, candidate: float, reference: float, margin: float = 0.0) -> bool:
    """True when `candidate` beats `reference` by more than a relative `margin`."""
    slack = abs(reference) * margin
    if higher_is_better(metric):
        return candidate > reference + slack
    return candidate < reference - slack


def is_no_worse(metric: str, candidate: float, reference: float, tolerance: float) -> bool:
    """True when `candidate` is at most a relative `tolerance` worse than `reference`."""
    slack = abs(reference) * tolerance
    if higher_is_better(metric):
        return candidate >= reference - slack
    return candidate <= reference + slack


def plain_label(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (`np.int64(1)` -> `1`); others unchanged."""
    return value.item() if isinstance(value, np.generic) else value


def resolve_positive_label(
    classes: Iterable[Any], truth: pd.Series, configured: Label | None
) -> Label | None:
    """The positive class of a binary problem, as one of `classes`; None for multiclass.

    `configured` must be one of the classes (the error lists them); unset, the class with the
    fewest rows in `truth` is positive (a tie goes to the last class, scikit-learn's choice).
    """
    known = [plain_label(c) for c in classes]
    if configured is not None:
        # `True == 1` in Python: a boolean must match a boolean class, not an integer one.
        found = [c for c in known if c == configured and type(c) is type(configured)]
        if not found:
            hint = ""
            if isinstance(configured, bool) and any(isinstance(c, str) for c in known):
                hint = " (YAML reads unquoted yes/no/true/false as booleans: quote the label)"
            raise ConfigError(
                f"positive_label {configured!r} ({type(configured).__name__}) is not a class "
                f"of the training data; classes are {known}{hint}"
            )
        if len(known) != 2:
            raise ConfigError(
                f"positive_label {configured!r} is set but the target has {len(known)} classes "
                f"{known}; it applies to binary classification only"
            )
        return found[0]
    if len(known) != 2:
        return None
    counts = [int((truth == c).sum()) for c in known]
    return known[0] if counts[0] < counts[1] else known[1]


def encode_label(label: Label | None) -> str:
    """A label as JSON text for an MLflow tag, keeping its type (`"Yes"`, `1`, `true`)."""
    return json.dumps(plain_label(label))


def decode_label(text: str | None) -> Label | None:
    """A label read back from an MLflow tag written by `encode_label` (None when absent)."""
    if not text:
        return None
    value = json.loads(text)
    return value if isinstance(value, str | int | bool) else None


def regression_metrics(y_true: pd.Series, y_pred: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and R² of a regression holdout."""
    return {
        "rmse": float(skm.root_mean_squared_error(y_true, y_pred)),
        "mae": float(skm.mean_absolute_error(y_true, y_pred)),
        "r2": float(skm.r2_score(y_true, y_pred)) if len(y_true) > 1 else float("nan"),
    }


def label_metrics(y_true: Any, y_pred: Any, classes: Iterable[Any]) -> dict[str, float]:
    """Metrics of predicted labels alone: accuracy, balanced accuracy, macro F1, recall per class.

    A class absent from `y_true` has no recall (NaN), as on a small slice.
    """
    classes = list(classes)
    recalls = skm.recall_score(y_true, y_pred, labels=classes, average=None, zero_division=np.nan)
    return {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y_true, y_pred)),
        "f1": float(skm.f1_score(y_true, y_pred, average="macro", zero_division=0)),
        **{recall_key(c): float(r) for c, r in zip(classes, recalls, strict=True)},
    }


def classification_metrics(
    y_true: pd.Series,
    y_pred: np.ndarray,
    proba: np.ndarray,
    classes: np.ndarray,
    positive_label: Label | None = None,
) -> dict[str, float]:
    """Label metrics, ROC AUC (weighted one-vs-rest for multiclass), PR AUC and log loss.

    PR AUC is the average precision of `positive_label` for binary problems (the minority class
    of `y_true` when unset) and the macro average over the classes present for multiclass.
    """
    result = {
        **label_metrics(y_true, y_pred, classes),
        "log_loss": float(skm.log_loss(y_true, proba, labels=classes)),
    }
    present = np.unique(y_true)
    if len(present) < 2:
        result["roc_auc"] = result["pr_auc"] = float("nan")  # undefined on a one-class slice
    elif len(classes) == 2:
        positive = resolve_positive_label(classes, y_true, positive_label)
        column = [plain_label(c) for c in classes].index(positive)
        result["roc_auc"] = float(skm.roc_auc_score(y_true, proba[:, 1], labels=classes))
        result["pr_auc"] = float(
            skm.average_precision_score(y_true, proba[:, column], pos_label=positive)
        )
    else:
        result["roc_auc"] = float(
            skm.roc_auc_score(y_true, proba, multi_class="ovr", average="weighted", labels=classes)
        )
        indicator = label_binarize(y_true, classes=classes)
        seen = indicator.any(axis=0)
        result["pr_auc"] = float(
            skm.average_precision_score(indicator[:, seen], proba[:, seen], average="macro")
        )
    return result


def training_positive_label(task: str, truth: pd.Series, configured: Label | None) -> Label | None:
    """The positive class of a binary target column (see `resolve_positive_label`); None for
    regression and multiclass. Checks a configured label against the column's classes."""
    if task != "classification":
        return None
    return resolve_positive_label(np.unique(truth.dropna()), truth, configured)
