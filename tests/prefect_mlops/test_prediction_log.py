"""The prediction log's stores and reader, on records of a handful of rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from prefect_mlops.prediction_log import (
    FeedbackRecord,
    PredictionRecord,
    SqlStore,
    open_store,
    read_prediction_log,
)

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def _record(request_id: str, temps: list[float]) -> PredictionRecord:
    predictions = np.array([2 * t for t in temps])
    return PredictionRecord(request_id, NOW, "demand", "3", {"temp": temps}, predictions, None)


def test_parquet_log_reads_back_rows_with_latest_label(tmp_path: Path) -> None:
    store = open_store(None, tmp_path / "log")
    store.append_predictions([_record("a", [1.0, 2.0]), _record("b", [3.0])])
    store.append_feedback([FeedbackRecord("a", 1, 9.0, NOW), FeedbackRecord("a", 1, 4.0, NOW + 1)])
    log = read_prediction_log(directory=tmp_path / "log").sort_values(["request_id", "row_index"])
    assert list(log["temp"]) == [1.0, 2.0, 3.0]
    assert list(log["prediction"]) == [2.0, 4.0, 6.0]
    assert log["label"].tolist()[1] == 4.0 and log["label"].isna().tolist() == [True, False, True]


def test_reader_defaults_to_the_artifact_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_ARTIFACT_ROOT", str(tmp_path))
    open_store(None, tmp_path / "prediction_log").append_predictions([_record("a", [1.0])])
    assert list(read_prediction_log()["request_id"]) == ["a"]


def test_empty_log_has_the_contract_columns(tmp_path: Path) -> None:
    log = read_prediction_log(directory=tmp_path / "none")
    assert {"request_id", "row_index", "prediction", "label"} <= set(log.columns)
    assert log.empty


def test_sql_log_reads_back_rows_with_labels(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    store = SqlStore(url)
    store.append_predictions([_record("a", [1.0, 2.0])])
    store.append_feedback([FeedbackRecord("a", 0, "yes", NOW)])
    log = read_prediction_log(url=url)
    assert list(log["temp"]) == [1.0, 2.0] and list(log["label"].fillna("-")) == ["yes", "-"]
