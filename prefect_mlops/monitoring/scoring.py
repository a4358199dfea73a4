"""Scoring both sides: the monitored version's predictions of its reference and of the window."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from prefect_mlops.config import PipelineConfig
from prefect_mlops.features import infer_schema
from prefect_mlops.io import read_parquet, write_parquet_atomic
from prefect_mlops.monitoring.records import PREDICTION, MonitoredModel, ScoredRefs, WindowRef
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


def write_predictions(values: Any, path: Path) -> None:
    """Predictions as a one-column Parquet file, row for row with the data they were made on."""
    write_parquet_atomic(pd.DataFrame({PREDICTION: values}), path)


def score_windows(
    model: MonitoredModel, window: WindowRef, config: PipelineConfig, estimator: Any
) -> ScoredRefs:
    """Predict reference and current rows with `estimator` (logged predictions as fallback).

    Only the predictions are written (one column beside the window): the data is already on disk.
    The version's holdout, when its file remains, is scored too: the quality report's reference.
    """
    reference = read_parquet(model.snapshot_uri)
    current = read_parquet(window.uri)
    schema = reference_schema(reference, config)
    problems = schema_problems(reference, current, schema.features)
    folder = Path(window.uri).parent
    reference_predictions = folder / "reference-predictions.parquet"
    label = model_label(model.name, model.version)
    scored_reference = predict_rows(
        estimator, reference, schema.features, f"reference snapshot {model.snapshot_uri}", label
    )
    write_predictions(scored_reference, reference_predictions)
    holdout_predictions = None
    if model.holdout_uri:
        holdout = read_parquet(model.holdout_uri)
        holdout_predictions = folder / "holdout-predictions.parquet"
        scored_holdout = predict_rows(
            estimator, holdout, schema.features, f"holdout {model.holdout_uri}", label
        )
        write_predictions(scored_holdout, holdout_predictions)
    source, current_predictions = "model", None
    if not problems:
        current_predictions = folder / "current-predictions.parquet"
        scored_current = predict_rows(
            estimator, current, schema.features, f"window {window.source} ({window.uri})", label
        )
        write_predictions(scored_current, current_predictions)
    elif not window.has_logged_predictions:
        source = "none"
    else:
        source = "log"  # the features no longer fit the model: judge what was actually served
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
    )


def scored_holdout(scored: ScoredRefs) -> pd.DataFrame | None:
    """The version's holdout with its predictions, when it was scored (else None)."""
    if not scored.holdout_uri or not scored.holdout_predictions_uri:
        return None
    holdout = read_parquet(scored.holdout_uri)
    holdout[PREDICTION] = read_parquet(scored.holdout_predictions_uri)[PREDICTION].to_numpy()
    return holdout


def scored_frames(scored: ScoredRefs) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference and current data with the prediction column each side has."""
    reference = read_parquet(scored.reference_uri)
    reference[PREDICTION] = read_parquet(scored.reference_predictions_uri)[PREDICTION].to_numpy()
    current = read_parquet(scored.current_uri)
    if scored.current_predictions_uri:
        current[PREDICTION] = read_parquet(scored.current_predictions_uri)[PREDICTION].to_numpy()
    return reference, current
