"""Evaluate: holdout metrics overall and per slice, diagnostic plots and feature importance.

A classifier's evaluation also scores scikit-learn's majority-class dummy on the same holdout
(the bar the gate's baseline rule holds it to), and a binary classifier's positive class is fixed
here and recorded on the training run (`positive_label` tag) for monitoring to use.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from sklearn.dummy import DummyClassifier
from sklearn.inspection import permutation_importance
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    PrecisionRecallDisplay,
    PredictionErrorDisplay,
    RocCurveDisplay,
    balanced_accuracy_score,
)
from sklearn.pipeline import Pipeline

from prefect_mlops.config import PipelineConfig, TaskType
from prefect_mlops.metrics import (
    POSITIVE_LABEL_TAG,
    Label,
    classification_metrics,
    encode_label,
    plain_label,
    regression_metrics,
    resolve_positive_label,
    scorer,
)
from prefect_mlops.results import BaselineScore, Evaluation, FeatureSchema

MIN_SLICE_ROWS = 10
SLICE_TABLE = "evaluation/slice_metrics.json"
IMPORTANCE_SAMPLE_ROWS = 2000
# The metric a classifier must beat the majority-class dummy on: a constant answer scores
# exactly 1 / number of classes whatever the class shares, where accuracy rewards it.
BASELINE_CLASSIFICATION_METRIC = "balanced_accuracy"


@dataclass(frozen=True)
class Predictions:
    """A model's outputs on a frame, computed once and shared by metrics, slices and plots."""

    predicted: np.ndarray
    proba: np.ndarray | None = None
    classes: np.ndarray | None = None

    def take(self, rows: np.ndarray) -> Predictions:
        proba = None if self.proba is None else self.proba[rows]
        return Predictions(self.predicted[rows], proba, self.classes)


def predict(model: Pipeline, frame: pd.DataFrame, schema: FeatureSchema) -> Predictions:
    """Predictions (and class probabilities for classifiers) of `model` on `frame`."""
    features = frame[schema.features]
    if schema.task == TaskType.regression:
        return Predictions(np.asarray(model.predict(features)))
    proba = model.predict_proba(features)
    return Predictions(model.classes_[proba.argmax(axis=1)], proba, model.classes_)


def metrics_of(
    truth: pd.Series, predictions: Predictions, positive_label: Label | None = None
) -> dict[str, float]:
    """The task type's metrics of precomputed predictions."""
    if predictions.proba is None or predictions.classes is None:
        return regression_metrics(truth, predictions.predicted)
    return classification_metrics(
        truth, predictions.predicted, predictions.proba, predictions.classes, positive_label
    )


def holdout_metrics(
    model: Pipeline,
    frame: pd.DataFrame,
    schema: FeatureSchema,
    positive_label: Label | None = None,
) -> dict[str, float]:
    """The task type's metrics of `model` on `frame` (binary: for `positive_label`, else the
    minority class of `frame`)."""
    return metrics_of(frame[schema.target], predict(model, frame, schema), positive_label)


def positive_label_of(
    model: Pipeline, holdout: pd.DataFrame, schema: FeatureSchema, config: PipelineConfig
) -> Label | None:
    """The binary positive class: the config's (checked against the classes the model was
    trained on), else the holdout's minority class; None for regression and multiclass."""
    classes = getattr(model, "classes_", None)
    if schema.task != TaskType.classification or classes is None:
        return None
    return resolve_positive_label(classes, holdout[schema.target], config.positive_label)


def baseline_score(holdout: pd.DataFrame, schema: FeatureSchema) -> BaselineScore | None:
    """scikit-learn's DummyClassifier(most_frequent) on the holdout, scored on balanced accuracy
    (None for regression).

    A constant class scores exactly 1 / classes on balanced accuracy whichever class it is, so
    fitting the dummy on the holdout's labels gives the bar the training part's would. A mean
    fitted on a time split's latest rows would be an in-sample bar no honest regressor need
    clear under drift, so regression has none.
    """
    if schema.task != TaskType.classification:
        return None
    features, truth = holdout[schema.features], holdout[schema.target]
    answer = DummyClassifier(strategy="most_frequent").fit(features, truth).predict(features)
    first = plain_label(answer[0]) if len(answer) else ""
    return BaselineScore(
        estimator="DummyClassifier(strategy='most_frequent')",
        metric=BASELINE_CLASSIFICATION_METRIC,
        value=float(balanced_accuracy_score(truth, answer)),
        predicts=f"{first!r} for every row",
    )


def slice_metrics(
    frame: pd.DataFrame,
    predictions: Predictions,
    schema: FeatureSchema,
    columns: list[str],
    positive_label: Label | None = None,
) -> dict[str, dict[str, dict[str, float]]]:
    """Metrics per value of each slice column (values with too few rows are skipped)."""
    truth = frame[schema.target].reset_index(drop=True)
    result: dict[str, dict[str, dict[str, float]]] = {}
    for column in columns:
        keys = frame[column].astype(str).reset_index(drop=True)
        result[column] = {
            str(value): {
                **metrics_of(truth.iloc[rows], predictions.take(np.asarray(rows)), positive_label),
                "rows": float(len(rows)),
            }
            for value, rows in keys.groupby(keys, sort=True).indices.items()
            if len(rows) >= MIN_SLICE_ROWS
        }
    return result


def _axes() -> tuple[Figure, Axes]:
    # A bare Figure, not pyplot: no global state, safe on worker threads, no display needed.
    fig = Figure(figsize=(6, 5))
    return fig, fig.add_subplot()


def diagnostic_figures(
    truth: pd.Series, predictions: Predictions, positive_label: Label | None = None
) -> dict[str, Figure]:
    """Residual plots for regression; confusion matrix, and ROC and precision-recall curves of
    the positive class for binary classification; each titled with what and on how many rows."""
    figures: dict[str, Figure] = {}
    rows = f"holdout, {len(truth):,} rows"
    if predictions.proba is None:
        titles = {
            "actual_vs_predicted": "Actual vs predicted",
            "residual_vs_predicted": "Residuals vs predicted",
        }
        for kind, title in titles.items():
            fig, ax = _axes()
            PredictionErrorDisplay.from_predictions(truth, predictions.predicted, kind=kind, ax=ax)
            ax.set_title(f"{title} ({rows})")
            figures[f"{kind}.png"] = fig
        return figures
    fig, ax = _axes()
    ConfusionMatrixDisplay.from_predictions(truth, predictions.predicted, ax=ax)
    ax.set_title(f"Confusion matrix ({rows})")
    figures["confusion_matrix.png"] = fig
    classes = predictions.classes
    if classes is not None and len(classes) == 2 and truth.nunique() == 2:
        positive = resolve_positive_label(classes, truth, positive_label)
        score = predictions.proba[:, [plain_label(c) for c in classes].index(positive)]
        fig, ax = _axes()
        RocCurveDisplay.from_predictions(truth, score, pos_label=positive, ax=ax)
        ax.set_title(f"ROC curve of class {positive!r} ({rows})")
        figures["roc_curve.png"] = fig
        fig, ax = _axes()
        PrecisionRecallDisplay.from_predictions(truth, score, pos_label=positive, ax=ax)
        ax.set_title(f"Precision-recall of class {positive!r} ({rows})")
        figures["precision_recall_curve.png"] = fig
    return figures


def slice_table(slices: dict[str, dict[str, dict[str, float]]]) -> pd.DataFrame:
    """Slice metrics as one row per slice value (column, value, rows, then each metric), rounded
    to four significant digits: the table MLflow shows as an artifact."""
    records = [
        {
            "column": column,
            "value": value,
            "rows": int(metrics["rows"]),
            **{k: float(f"{v:.4g}") for k, v in metrics.items() if k != "rows"},
        }
        for column, values in slices.items()
        for value, metrics in values.items()
    ]
    return pd.DataFrame.from_records(records)


def slice_figure(
    slices: dict[str, dict[str, dict[str, float]]], metric: str, overall: float | None
) -> Figure | None:
    """One bar chart per slice column of `metric` by value, the overall holdout value dashed;
    None when there are no slices."""
    shown = {column: values for column, values in slices.items() if values}
    if not shown:
        return None
    fig = Figure(figsize=(6, 2.6 * len(shown) + 0.6))
    for index, (column, values) in enumerate(shown.items(), 1):
        ax = fig.add_subplot(len(shown), 1, index)
        labels = list(values)
        ax.bar(labels, [values[v].get(metric, float("nan")) for v in labels])
        if overall is not None and np.isfinite(overall):
            ax.axhline(overall, linestyle="--", color="black", label=f"overall {overall:.4g}")
            ax.legend(loc="best")
        ax.set_title(f"{metric} by {column}")
        ax.set_xlabel(column)
        ax.set_ylabel(metric)
    fig.suptitle(f"Holdout {metric} per slice")
    fig.tight_layout()
    return fig


def feature_importance(
    model: Pipeline,
    frame: pd.DataFrame,
    schema: FeatureSchema,
    metric: str,
    seed: int,
    positive_label: Label | None = None,
) -> pd.Series:
    """Permutation importance of each input column on a sample of the holdout."""
    sample = frame.sample(n=min(len(frame), IMPORTANCE_SAMPLE_ROWS), random_state=seed)
    result = permutation_importance(
        model,
        sample[schema.features],
        sample[schema.target],
        scoring=scorer(metric, positive_label),
        n_repeats=3,
        random_state=seed,
    )
    return pd.Series(result.importances_mean, index=schema.features).sort_values()


def importance_figure(importance: pd.Series, rows: int | None = None) -> Figure:
    """A horizontal bar chart of permutation importances (`rows`: the sample they came from)."""
    fig = Figure(figsize=(6, max(3, 0.3 * len(importance))))
    ax = fig.add_subplot()
    importance.plot.barh(ax=ax)
    ax.set_xlabel("mean decrease in score when permuted")
    sample = f" ({rows:,} holdout rows)" if rows else ""
    ax.set_title(f"Permutation feature importance{sample}")
    fig.tight_layout()
    return fig


@dataclass
class HoldoutReport:
    """Everything the evaluation of one model on its holdout produced."""

    evaluation: Evaluation
    figures: dict[str, Figure] = field(default_factory=dict)
    importance: pd.Series | None = None


def evaluate_holdout(
    model: Pipeline, holdout: pd.DataFrame, schema: FeatureSchema, config: PipelineConfig
) -> HoldoutReport:
    """Metrics overall and per slice, diagnostic plots and permutation importance."""
    predictions = predict(model, holdout, schema)  # once: metrics, slices and plots share it
    truth = holdout[schema.target]
    positive = positive_label_of(model, holdout, schema, config)
    evaluation = Evaluation(
        metrics=metrics_of(truth, predictions, positive),
        slices=slice_metrics(holdout, predictions, schema, config.slices, positive),
        baseline=baseline_score(holdout, schema),
        positive_label=positive,
    )
    figures = diagnostic_figures(truth, predictions, positive)
    metric = config.gate.primary_metric
    importance = feature_importance(model, holdout, schema, metric, config.seed, positive)
    sampled = min(len(holdout), IMPORTANCE_SAMPLE_ROWS)
    figures["feature_importance.png"] = importance_figure(importance, sampled)
    by_slice = slice_figure(evaluation.slices, metric, evaluation.metrics.get(metric))
    if by_slice is not None:
        figures["slice_metrics.png"] = by_slice
    return HoldoutReport(evaluation, figures, importance)


def log_holdout_report(client: MlflowClient, run_id: str, report: HoldoutReport) -> None:
    """Holdout metrics, the baseline's score, slice metrics, importances and plots on the
    training run; a binary classifier's positive class as the run's `positive_label` tag."""
    now = int(time.time() * 1000)
    evaluation = report.evaluation
    metrics = [
        Metric(f"holdout_{name}", value, now, 0)
        for name, value in evaluation.metrics.items()
        if np.isfinite(value)
    ]
    if evaluation.baseline is not None and np.isfinite(evaluation.baseline.value):
        metrics.append(
            Metric(f"baseline_{evaluation.baseline.metric}", evaluation.baseline.value, now, 0)
        )
    client.log_batch(run_id, metrics=metrics)
    if evaluation.positive_label is not None:
        client.set_tag(run_id, POSITIVE_LABEL_TAG, encode_label(evaluation.positive_label))
    if evaluation.slices:  # a table (columns and rows) the MLflow UI shows as one
        client.log_table(run_id, slice_table(evaluation.slices), SLICE_TABLE)
    if report.importance is not None:
        importance = {str(k): float(v) for k, v in report.importance.items()}
        client.log_dict(run_id, importance, "evaluation/feature_importance.json")
    for name, figure in report.figures.items():
        client.log_figure(run_id, figure, f"evaluation/{name}")
