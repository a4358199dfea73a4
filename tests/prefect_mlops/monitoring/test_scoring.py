"""Scoring both sides: schema problems of the window against the model's reference."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from mlflow.entities import DatasetInput, InputTag
from mlflow.tracking import MlflowClient
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline

from prefect_mlops.config import PipelineConfig
from prefect_mlops.features import build_preprocessor
from prefect_mlops.lineage import describe_dataset
from prefect_mlops.monitoring import PREDICTION, MonitoredModel, WindowRef
from prefect_mlops.monitoring.reference import DATASET_CONTEXT_TAG, holdout_path, logged_holdout
from prefect_mlops.monitoring.scoring import (
    reference_schema,
    schema_problems,
    score_windows,
    scored_holdout,
)
from prefect_mlops.settings import Settings
from tests.prefect_mlops.monitoring.conftest import small_frame


def test_schema_problems_name_missing_and_retyped_columns() -> None:
    reference = pd.DataFrame({"a": [1.0], "b": ["x"], "c": [2]})
    current = pd.DataFrame({"a": ["1.0"], "c": [3]})
    assert schema_problems(reference, current, ["a", "b", "c"]) == [
        "a: type changed from float64 to object",
        "b: missing from the current data",
    ]


def test_the_holdout_is_scored_as_the_quality_reference(
    small_config: PipelineConfig, tmp_path: Path
) -> None:
    reference, current, holdout = small_frame(200, 0), small_frame(100, 1), small_frame(50, 2)
    paths = {}
    for name, frame in (("snapshot", reference), ("current", current), ("holdout", holdout)):
        paths[name] = tmp_path / f"{name}.parquet"
        frame.drop(columns=[PREDICTION]).to_parquet(paths[name])
    schema = reference_schema(reference, small_config)
    estimator = Pipeline([("prep", build_preprocessor(schema)), ("model", LinearRegression())]).fit(
        reference[schema.features], reference["y"]
    )
    model = MonitoredModel(
        name="m",
        alias="champion",
        version="1",
        run_id="r",
        snapshot_uri=str(paths["snapshot"]),
        fingerprint="f",
        holdout_uri=str(paths["holdout"]),
    )
    window = WindowRef(uri=str(paths["current"]), rows=100, labeled_rows=100, source="dataset")
    scored = score_windows(model, window, small_config, estimator)
    frame = scored_holdout(scored)
    assert frame is not None and len(frame) == 50
    expected = estimator.predict(holdout[schema.features])
    assert frame[PREDICTION].to_numpy() == pytest.approx(expected)
    assert scored_holdout(scored.model_copy(update={"holdout_uri": None})) is None


def test_holdout_path_is_the_training_runs_holdout_input(
    settings: Settings, tmp_path: Path
) -> None:
    holdout = tmp_path / "holdout.parquet"
    small_frame(20, 0).to_parquet(holdout)
    client = MlflowClient(settings.tracking_uri)
    run_id = client.create_run(client.create_experiment("lineage")).info.run_id
    dataset = describe_dataset(str(holdout), "m-data", "holdout")._to_mlflow_entity()
    client.log_inputs(run_id, [DatasetInput(dataset, [InputTag(DATASET_CONTEXT_TAG, "holdout")])])
    assert holdout_path(client.get_run(run_id)) == str(holdout.resolve())
    holdout.unlink()
    assert holdout_path(client.get_run(run_id)) is None
    assert logged_holdout(client.get_run(run_id)) == str(holdout.resolve())  # named when gone
