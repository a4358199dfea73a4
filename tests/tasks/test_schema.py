"""The schema task infers a snapshot's feature schema and refuses untrainable data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prefect_mlops.config import PipelineConfig, parse_config
from prefect_mlops.errors import DataQualityError
from prefect_mlops.io import write_parquet_atomic
from prefect_mlops.results import Snapshot
from tasks.schema import derive_schema
from tests.conftest import fast_config_dict


@pytest.fixture
def config() -> PipelineConfig:
    return parse_config(
        fast_config_dict(
            task="regression",
            target="y",
            split={"strategy": "random", "test_size": 0.25},
            categorical_features=[],
            datetime_features=["when"],
            exclude=[],
            slices=[],
        )
    )


def snapshot_of(frame: pd.DataFrame, tmp_path: Path) -> Snapshot:
    uri = tmp_path / "snapshot.parquet"
    write_parquet_atomic(frame, uri)
    return Snapshot(
        uri=str(uri), fingerprint="f", rows=len(frame), columns=list(frame), source="test"
    )


def test_schema_is_read_from_the_snapshot(config: PipelineConfig, tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"x": [1.0, 2.0, 3.0], "c": ["a", "b", "a"], "when": ["2024-01-01"] * 3, "y": [1, 2, 3]}
    )
    schema = derive_schema.fn(snapshot_of(frame, tmp_path), config)
    assert (schema.numeric, schema.categorical, schema.datetime) == (["x"], ["c"], ["when"])
    assert schema.target == "y"


def test_absent_target_is_named_before_reading_rows(config: PipelineConfig, tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0], "when": ["2024-01-01"] * 2})
    with pytest.raises(DataQualityError, match="target column 'y' is absent"):
        derive_schema.fn(snapshot_of(frame, tmp_path), config)


def test_untrainable_data_is_refused(config: PipelineConfig, tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": [np.nan, np.nan], "when": ["2024-01-01"] * 2, "y": [1.0, None]})
    with pytest.raises(DataQualityError, match=r"1 nulls.*\['x'\] are entirely null"):
        derive_schema.fn(snapshot_of(frame, tmp_path), config)
