"""Batch scoring's prediction-log path: every dtype and null of a scored chunk, and an outage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prefect_mlops.errors import ScoringError
from prefect_mlops.log_safety import read_dead_letters
from prefect_mlops.prediction_log import open_store, read_model_log
from prefect_mlops.results import ModelVersionRef
from tasks.score import log_scored_chunk, scored_record
from tests.prefect_mlops.test_log_safety import immutable

MODEL = ModelVersionRef(name="churn", version="4", aliases=["champion"])


def _chunk() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "plan": ["basic", np.nan, "pro"],  # NaN in a string column (the ArrowTypeError)
            "region": pd.Categorical(["n", None, "s"]),
            "spend": [1.5, None, 3.0],
            "seats": [1, 2, 3],
            "active": [True, False, True],
            "signed_up": pd.to_datetime(["2026-01-01", None, "2026-01-03"]),
        }
    )


def test_a_scored_chunk_with_nulls_of_every_dtype_is_logged_as_batch_rows(tmp_path: Path) -> None:
    store = open_store(None, tmp_path / "log")
    record = scored_record(MODEL, "batch-x-0", _chunk(), np.array(["no", "yes", "no"]))
    assert log_scored_chunk(store, record, "churn v4") == 0
    read = read_model_log("churn", directory=tmp_path / "log", sources=["batch"])
    features = read.features
    assert features["plan"].tolist() == ["basic", None, "pro"]
    assert features["region"].isna().tolist() == [False, True, False]
    assert features["spend"].isna().tolist() == [False, True, False]
    assert features["seats"].tolist() == [1, 2, 3] and features["active"].tolist()[1] is False
    assert pd.api.types.is_datetime64_any_dtype(features["signed_up"])
    assert set(read.rows["source"]) == {"batch"} and read_dead_letters(store) == []
    assert read_model_log("churn", directory=tmp_path / "log", sources=["online"]).rows.empty


def test_a_log_that_is_down_fails_the_chunk_naming_the_model(tmp_path: Path) -> None:
    store = open_store(None, tmp_path / "log")
    (tmp_path / "log").mkdir()
    record = scored_record(MODEL, "batch-x-0", _chunk(), np.zeros(3))
    with immutable(tmp_path / "log"), pytest.raises(ScoringError, match="churn v4"):
        log_scored_chunk(store, record, "churn v4")
