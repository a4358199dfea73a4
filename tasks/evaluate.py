"""Evaluate: holdout metrics overall and per slice, diagnostic plots and feature importance."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from mlflow.entities import Metric
from prefect import task
from sklearn.inspection import permutation_importance
from sklearn.metrics import ConfusionMatrixDisplay, PredictionErrorDisplay, RocCurveDisplay
from sklearn.pipeline import Pipeline

from prefect_mlops.config import PipelineConfig, TaskType
from prefect_mlops.metrics import classification_metrics, regression_metrics, scorer_name
from prefect_mlops.results import Evaluation, FeatureSchema, SplitRefs
from prefect_mlops.settings import Settings
from prefect_mlops.tracking import mlflow_client
from tasks.io import read_parquet

MIN_SLICE_ROWS = 10
IMPORTANCE_SAMPLE_ROWS = 2000


def holdout_metrics(
    model: Pipeline, frame: pd.DataFrame, schema: FeatureSchema
) -> dict[str, float]:
    """The task type's metrics of `model` on `frame`."""
    features, truth = frame[schema.features], frame[schema.target]
    if schema.task == TaskType.regression:
        return regression_metrics(truth, model.predict(features))
    proba = model.predict_proba(features)
    classes = model.classes_
    return classification_metrics(truth, classes[proba.argmax(axis=1)], proba, classes)


def slice_metrics(
    model: Pipeline, frame: pd.DataFrame, schema: FeatureSchema, columns: list[str]
) -> dict[str, dict[str, dict[str, float]]]:
    """Metrics per value of each slice column (values with too few rows are skipped)."""
    result: dict[str, dict[str, dict[str, float]]] = {}
    for column in columns:
        groups = frame.groupby(frame[column].astype(str), dropna=False, sort=True)
        result[column] = {
            str(value): {**holdout_metrics(model, part, schema), "rows": float(len(part))}
            for value, part in groups
            if len(part) >= MIN_SLICE_ROWS
        }
    return result


def _axes() -> tuple[Figure, Axes]:
    # A bare Figure, not pyplot: no global state, safe on worker threads, no display needed.
    fig = Figure(figsize=(6, 5))
    return fig, fig.add_subplot()


def diagnostic_figures(
    model: Pipeline, frame: pd.DataFrame, schema: FeatureSchema
) -> dict[str, Figure]:
    """Residual plots for regression; confusion matrix and ROC for classification."""
    features, truth = frame[schema.features], frame[schema.target]
    figures: dict[str, Figure] = {}
    if schema.task == TaskType.regression:
        predicted = model.predict(features)
        for kind in ("actual_vs_predicted", "residual_vs_predicted"):
            fig, ax = _axes()
            PredictionErrorDisplay.from_predictions(truth, predicted, kind=kind, ax=ax)
            figures[f"{kind}.png"] = fig
        return figures
    fig, ax = _axes()
    ConfusionMatrixDisplay.from_estimator(model, features, truth, ax=ax)
    figures["confusion_matrix.png"] = fig
    if len(model.classes_) == 2:
        fig, ax = _axes()
        RocCurveDisplay.from_estimator(model, features, truth, ax=ax)
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


@task
def evaluate_model(
    model: Pipeline,
    split: SplitRefs,
    schema: FeatureSchema,
    config: PipelineConfig,
    run_id: str,
    settings: Settings,
) -> Evaluation:
    """Score the fitted model on the holdout and log metrics, slices and plots to MLflow."""
    holdout = read_parquet(split.holdout_uri)
    evaluation = Evaluation(
        metrics=holdout_metrics(model, holdout, schema),
        slices=slice_metrics(model, holdout, schema, config.slices),
    )
    client = mlflow_client(settings)
    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[
            Metric(f"holdout_{name}", value, now, 0)
            for name, value in evaluation.metrics.items()
            if np.isfinite(value)
        ],
    )
    client.log_dict(run_id, evaluation.slices, "evaluation/slice_metrics.json")
    figures = diagnostic_figures(model, holdout, schema)
    importance = feature_importance(model, holdout, schema, config.gate.primary_metric, config.seed)
    figures["feature_importance.png"] = importance_figure(importance)
    client.log_dict(run_id, importance.to_dict(), "evaluation/feature_importance.json")
    for name, figure in figures.items():
        client.log_figure(run_id, figure, f"evaluation/{name}")
    return evaluation
