"""Evaluate: holdout metrics overall and per slice, diagnostic plots and feature importance."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from sklearn.inspection import permutation_importance
from sklearn.metrics import ConfusionMatrixDisplay, PredictionErrorDisplay, RocCurveDisplay
from sklearn.pipeline import Pipeline

from prefect_mlops.config import PipelineConfig, TaskType
from prefect_mlops.metrics import classification_metrics, regression_metrics, scorer_name
from prefect_mlops.results import Evaluation, FeatureSchema

MIN_SLICE_ROWS = 10
IMPORTANCE_SAMPLE_ROWS = 2000


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


def metrics_of(truth: pd.Series, predictions: Predictions) -> dict[str, float]:
    """The task type's metrics of precomputed predictions."""
    if predictions.proba is None or predictions.classes is None:
        return regression_metrics(truth, predictions.predicted)
    return classification_metrics(
        truth, predictions.predicted, predictions.proba, predictions.classes
    )


def holdout_metrics(
    model: Pipeline, frame: pd.DataFrame, schema: FeatureSchema
) -> dict[str, float]:
    """The task type's metrics of `model` on `frame`."""
    return metrics_of(frame[schema.target], predict(model, frame, schema))


def slice_metrics(
    frame: pd.DataFrame, predictions: Predictions, schema: FeatureSchema, columns: list[str]
) -> dict[str, dict[str, dict[str, float]]]:
    """Metrics per value of each slice column (values with too few rows are skipped)."""
    truth = frame[schema.target].reset_index(drop=True)
    result: dict[str, dict[str, dict[str, float]]] = {}
    for column in columns:
        keys = frame[column].astype(str).reset_index(drop=True)
        result[column] = {
            str(value): {
                **metrics_of(truth.iloc[rows], predictions.take(np.asarray(rows))),
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


def diagnostic_figures(truth: pd.Series, predictions: Predictions) -> dict[str, Figure]:
    """Residual plots for regression; confusion matrix and ROC for classification."""
    figures: dict[str, Figure] = {}
    if predictions.proba is None:
        for kind in ("actual_vs_predicted", "residual_vs_predicted"):
            fig, ax = _axes()
            PredictionErrorDisplay.from_predictions(truth, predictions.predicted, kind=kind, ax=ax)
            figures[f"{kind}.png"] = fig
        return figures
    fig, ax = _axes()
    ConfusionMatrixDisplay.from_predictions(truth, predictions.predicted, ax=ax)
    figures["confusion_matrix.png"] = fig
    classes = predictions.classes
    if classes is not None and len(classes) == 2:
        fig, ax = _axes()
        RocCurveDisplay.from_predictions(
            truth, predictions.proba[:, 1], pos_label=classes[1], ax=ax
        )
        figures["roc_curve.png"] = fig
    return figures


def feature_importance(
    model: Pipeline, frame: pd.DataFrame, schema: FeatureSchema, metric: str, seed: int
) -> pd.Series:
    """Permutation importance of each input column on a sample of the holdout."""
    sample = frame.sample(n=min(len(frame), IMPORTANCE_SAMPLE_ROWS), random_state=seed)
    result = permutation_importance(
        model,
        sample[schema.features],
        sample[schema.target],
        scoring=scorer_name(metric),
        n_repeats=3,
        random_state=seed,
    )
    return pd.Series(result.importances_mean, index=schema.features).sort_values()


def importance_figure(importance: pd.Series) -> Figure:
    """A horizontal bar chart of permutation importances."""
    fig = Figure(figsize=(6, max(3, 0.3 * len(importance))))
    ax = fig.add_subplot()
    importance.plot.barh(ax=ax)
    ax.set_xlabel("mean decrease in score when permuted")
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
    evaluation = Evaluation(
        metrics=metrics_of(truth, predictions),
        slices=slice_metrics(holdout, predictions, schema, config.slices),
    )
    figures = diagnostic_figures(truth, predictions)
    importance = feature_importance(model, holdout, schema, config.gate.primary_metric, config.seed)
    figures["feature_importance.png"] = importance_figure(importance)
    return HoldoutReport(evaluation, figures, importance)


def log_holdout_report(client: MlflowClient, run_id: str, report: HoldoutReport) -> None:
    """Holdout metrics, slice metrics, importances and plots on the training run."""
    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[
            Metric(f"holdout_{name}", value, now, 0)
            for name, value in report.evaluation.metrics.items()
            if np.isfinite(value)
        ],
    )
    client.log_dict(run_id, report.evaluation.slices, "evaluation/slice_metrics.json")
    if report.importance is not None:
        importance = {str(k): float(v) for k, v in report.importance.items()}
        client.log_dict(run_id, importance, "evaluation/feature_importance.json")
    for name, figure in report.figures.items():
        client.log_figure(run_id, figure, f"evaluation/{name}")
