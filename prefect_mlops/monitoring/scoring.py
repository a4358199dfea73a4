"""Scoring both sides: the monitored version's predictions of its reference and of the window."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from prefect_mlops.artifact_store import local_file
from prefect_mlops.config import PipelineConfig, TaskType
from prefect_mlops.features import infer_schema
from prefect_mlops.io import read_parquet, write_parquet_atomic
from prefect_mlops.metrics import plain_label
from prefect_mlops.monitoring.records import (
    PREDICTION,
    PROBABILITIES,
    PROBABILITY_PREFIX,
    MonitoredModel,
    ScoredRefs,
    WindowRef,
)
from prefect_mlops.results import FeatureSchema
from prefect_mlops.scoring_inputs import model_label, predict_rows


def reference_schema(reference: pd.DataFrame, config: PipelineConfig) -> FeatureSchema:
    """The model's feature schema, inferred from its training snapshot as training did."""
    return infer_schema(reference.drop(columns=[PREDICTION], errors="ignore"), config)


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


def probability_columns(classes: list[Any]) -> list[str]:
    """The scored frames' probability column of each class, in the model's class order."""
    return [f"{PROBABILITY_PREFIX}{c}" for c in classes]


def model_classes(estimator: Any, config: PipelineConfig) -> list[Any] | None:
    """A classifier's classes in the order of its `predict_proba` columns (None otherwise)."""
    classes = getattr(estimator, "classes_", None)
    if config.task != TaskType.classification or classes is None:
        return None
    if not hasattr(estimator, "predict_proba"):
        return None
    return [plain_label(c) for c in classes]


def predict_probabilities(
    estimator: Any, frame: pd.DataFrame, features: list[str], classes: list[Any] | None
) -> np.ndarray | None:
    """Class probabilities of a classifier's rows (what PR and ROC AUC are computed on)."""
    if classes is None:
        return None
    return np.asarray(estimator.predict_proba(frame[features]), dtype=float)


def logged_probabilities(current: pd.DataFrame, classes: list[Any] | None) -> np.ndarray | None:
    """The window's logged probabilities as a matrix, when every row has one per class."""
    if classes is None or PROBABILITIES not in current.columns:
        return None
    rows = current[PROBABILITIES].tolist()
    if any(r is None or len(r) != len(classes) for r in rows):
        return None
    return np.asarray([list(r) for r in rows], dtype=float)


def write_predictions(
    values: Any,
    path: Path,
    probabilities: np.ndarray | None = None,
    classes: list[Any] | None = None,
) -> None:
    """Predictions (and a classifier's class probabilities, one column per class) as Parquet,
    row for row with the data they were made on."""
    frame = pd.DataFrame({PREDICTION: values})
    if probabilities is not None and classes is not None:
        frame[probability_columns(classes)] = probabilities
    write_parquet_atomic(frame, path)


def score_windows(
    model: MonitoredModel, window: WindowRef, config: PipelineConfig, estimator: Any
) -> ScoredRefs:
    """Predict reference and current rows with `estimator` (logged predictions as fallback).

    Only the predictions are written (one column beside the window): the data is already on disk.
    The version's holdout, when its file remains, is scored too: the quality report's reference.
    """
    reference = read_parquet(local_file(model.snapshot_uri))  # by URI: another host's too
    current = read_parquet(window.uri)
    schema = reference_schema(reference, config)
    problems = schema_problems(reference, current, schema.features)
    folder = Path(window.uri).parent
    reference_predictions = folder / "reference-predictions.parquet"
    label = model_label(model.name, model.version)
    classes = model_classes(estimator, config)
    scored_reference = predict_rows(
        estimator, reference, schema.features, f"reference snapshot {model.snapshot_uri}", label
    )
    write_predictions(scored_reference, reference_predictions)
    holdout_predictions = None
    if model.holdout_uri:
        holdout = read_parquet(local_file(model.holdout_uri))
        holdout_predictions = folder / "holdout-predictions.parquet"
        scored_holdout = predict_rows(
            estimator, holdout, schema.features, f"holdout {model.holdout_uri}", label
        )
        holdout_probabilities = predict_probabilities(estimator, holdout, schema.features, classes)
        write_predictions(scored_holdout, holdout_predictions, holdout_probabilities, classes)
    source, current_predictions = "model", None
    if not problems:
        current_predictions = folder / "current-predictions.parquet"
        scored_current = predict_rows(
            estimator, current, schema.features, f"window {window.source} ({window.uri})", label
        )
        probabilities = predict_probabilities(estimator, current, schema.features, classes)
        write_predictions(scored_current, current_predictions, probabilities, classes)
    elif not window.has_logged_predictions:
        source = "none"
    else:
        source = "log"  # the features no longer fit the model: judge what was actually served
        served = logged_probabilities(current, classes)
        if served is not None:  # what was served, with the probabilities it was served with
            current_predictions = folder / "current-predictions.parquet"
            write_predictions(current[PREDICTION], current_predictions, served, classes)
    return ScoredRefs(
        reference_uri=model.snapshot_uri,
        current_uri=window.uri,
        reference_predictions_uri=str(reference_predictions),
        current_predictions_uri=str(current_predictions) if current_predictions else None,
        reference_rows=len(reference),
        current_rows=len(current),
        prediction_source=source,
        holdout_uri=model.holdout_uri if holdout_predictions else None,
        holdout_predictions_uri=str(holdout_predictions) if holdout_predictions else None,
        schema_problems=problems,
        classes=classes,
    )


def scored_holdout(scored: ScoredRefs) -> pd.DataFrame | None:
    """The version's holdout with its predictions, when it was scored (else None)."""
    if not scored.holdout_uri or not scored.holdout_predictions_uri:
        return None
    holdout = read_parquet(local_file(scored.holdout_uri))
    return _with_predictions(holdout, scored.holdout_predictions_uri)


def _with_predictions(frame: pd.DataFrame, predictions_uri: str) -> pd.DataFrame:
    """`frame` with the prediction (and probability) columns written beside it."""
    predictions = read_parquet(predictions_uri)
    for column in predictions.columns:
        frame[column] = predictions[column].to_numpy()
    return frame


def scored_frames(scored: ScoredRefs) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference and current data with the prediction column each side has."""
    reference = _with_predictions(
        read_parquet(local_file(scored.reference_uri)), scored.reference_predictions_uri
    )
    current = read_parquet(scored.current_uri).drop(columns=[PROBABILITIES], errors="ignore")
    if scored.current_predictions_uri:
        current = _with_predictions(current, scored.current_predictions_uri)
    return reference, current
