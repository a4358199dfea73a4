"""Holdout metrics per task type, their direction, and the matching scikit-learn scorers."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn import metrics as skm

REGRESSION_METRICS: dict[str, bool] = {"rmse": False, "mae": False, "r2": True}
CLASSIFICATION_METRICS: dict[str, bool] = {
    "accuracy": True,
    "f1": True,
    "roc_auc": True,
    "log_loss": False,
}
# Scorer names for cross-validation; scikit-learn negates losses so that higher is better.
_SCORERS = {
    "rmse": "neg_root_mean_squared_error",
    "mae": "neg_mean_absolute_error",
    "r2": "r2",
    "accuracy": "accuracy",
    "f1": "f1_macro",
    "roc_auc": "roc_auc_ovr_weighted",
    "log_loss": "neg_log_loss",
}


def metric_names(task: str) -> list[str]:
    """The holdout metrics computed for a task type."""
    table = REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS
    return list(table)


def higher_is_better(metric: str) -> bool:
    """Direction of a metric: True when a larger value is a better model."""
    return {**REGRESSION_METRICS, **CLASSIFICATION_METRICS}[metric]


def scorer_name(metric: str) -> str:
    """The scikit-learn scoring string used to cross-validate on a metric."""
    return _SCORERS[metric]


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


def regression_metrics(y_true: pd.Series, y_pred: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and R² of a regression holdout."""
    return {
        "rmse": float(skm.root_mean_squared_error(y_true, y_pred)),
        "mae": float(skm.mean_absolute_error(y_true, y_pred)),
        "r2": float(skm.r2_score(y_true, y_pred)) if len(y_true) > 1 else float("nan"),
    }


def classification_metrics(
    y_true: pd.Series, y_pred: np.ndarray, proba: np.ndarray, classes: np.ndarray
) -> dict[str, float]:
    """Accuracy, macro F1, ROC AUC (one-vs-rest for multiclass) and log loss."""
    result = {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "f1": float(skm.f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "log_loss": float(skm.log_loss(y_true, proba, labels=classes)),
    }
    present = np.unique(y_true)
    if len(present) < 2:
        result["roc_auc"] = float("nan")  # undefined on a slice holding one class
    elif len(classes) == 2:
        result["roc_auc"] = float(skm.roc_auc_score(y_true, proba[:, 1]))
    else:
        result["roc_auc"] = float(
            skm.roc_auc_score(y_true, proba, multi_class="ovr", average="weighted", labels=classes)
        )
    return result
