"""The prediction log's stores and reader, on records of a handful of rows."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from prefect_mlops.prediction_log import (
    FeedbackRecord,
    LogValueError,
    ParquetStore,
    PredictionRecord,
    SqlStore,
    open_store,
    read_model_log,
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


def _typed(request_id: str, model: str = "weather", source: str = "online") -> PredictionRecord:
    """Features named like partition keys, with a null of every kind the models accept."""
    columns = {
        "date": [pd.Timestamp("2026-03-01"), pd.NaT, pd.Timestamp("2026-03-03")],
        "model": ["a", float("nan"), None],  # a categorical with NaN (batch) and None (service)
        "day": [1.5, float("nan"), None],
        "count": [1, 2, 3],
        "rainy": [True, None, False],
    }
    predictions = np.array(["dry", "wet", "dry"], dtype=object)
    return PredictionRecord(request_id, NOW, model, "2", columns, predictions, None, 0, source)


def test_features_named_like_partition_keys_read_back_as_sent(tmp_path: Path) -> None:
    open_store(None, tmp_path / "log").append_predictions([_typed("a")])
    features = read_model_log("weather", directory=tmp_path / "log").features
    assert list(features.columns) == ["date", "model", "day", "count", "rainy"]
    assert features["date"].tolist()[0] == pd.Timestamp("2026-03-01")  # not the logging day
    assert features["model"].tolist() == ["a", None, None]


@pytest.mark.parametrize("kind", ["parquet", "sqlite"])
def test_nulls_and_every_dtype_round_trip(tmp_path: Path, kind: str) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}" if kind == "sqlite" else None
    open_store(url, tmp_path / "log").append_predictions([_typed("a")])
    read = read_model_log("weather", url, tmp_path / "log")
    features = read.features
    assert pd.api.types.is_datetime64_any_dtype(features["date"]) and features["date"].isna()[1]
    assert features["day"].tolist()[0] == 1.5 and features["day"].isna().tolist()[1:] == [True] * 2
    assert features["count"].tolist() == [1, 2, 3]
    assert features["rainy"].tolist() == [True, None, False]
    assert features["model"].isna().tolist() == [False, True, True]
    assert read.rows["prediction"].tolist() == ["dry", "wet", "dry"]


@pytest.mark.parametrize("kind", ["parquet", "sqlite"])
def test_each_model_is_read_with_its_own_features(tmp_path: Path, kind: str) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}" if kind == "sqlite" else None
    store = open_store(url, tmp_path / "log")
    store.append_predictions([_record("d", [1.0]), _typed("w")])
    store.append_feedback([FeedbackRecord("d", 0, 7.0, NOW, "demand")])
    demand = read_model_log("demand", url, tmp_path / "log")
    weather = read_model_log("weather", url, tmp_path / "log")
    assert list(demand.features.columns) == ["temp"] and demand.rows["label"].tolist() == [7.0]
    assert "temp" not in weather.features.columns and len(weather.rows) == 3
    assert set(read_prediction_log(url, tmp_path / "log")["model_name"]) == {"demand", "weather"}


@pytest.mark.parametrize("kind", ["parquet", "sqlite"])
def test_sources_select_online_batch_or_both(tmp_path: Path, kind: str) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}" if kind == "sqlite" else None
    store = open_store(url, tmp_path / "log")
    store.append_predictions([_typed("live"), _typed("nightly", source="batch")])
    read = partial(read_model_log, "weather", url, tmp_path / "log")
    assert set(read(sources=["online"]).rows["request_id"]) == {"live"}
    assert set(read(sources=["batch"]).rows["request_id"]) == {"nightly"}
    assert set(read().rows["source"]) == {"online", "batch"}


def test_a_version_whose_files_disagree_on_types_reads_unified(tmp_path: Path) -> None:
    store = ParquetStore(tmp_path / "log")
    first = {"temp": [1, 2], "weather": [None, None]}  # ints, and a column all null
    later = {"temp": [2.5], "weather": ["rain"]}
    store.append_predictions([_record("a", [0.0, 0.0])._replace(columns=first)])
    store.append_predictions([_record("b", [0.0])._replace(columns=later)])
    features = read_model_log("demand", directory=tmp_path / "log").features
    assert features["temp"].tolist() == [1.0, 2.0, 2.5]
    assert features["weather"].tolist() == [None, None, "rain"]


def _legacy_log(root: Path) -> None:
    """Files of the earlier layout: every model under predictions/date=*, labels under feedback."""
    (root / "predictions" / "date=2026-01-01").mkdir(parents=True)
    (root / "feedback" / "date=2026-01-01").mkdir(parents=True)
    features = pa.StructArray.from_arrays([pa.array([20.0, 21.0])], names=["temp"])
    other = pa.StructArray.from_arrays([pa.array(["x"])], names=["city"])
    for name, model, struct in (("part-1-a", "demand", features), ("part-2-b", "other", other)):
        rows = len(struct)
        table = pa.table(
            {
                "request_id": [f"old-{model}"] * rows,
                "row_index": pa.array(range(rows), pa.int64()),
                "timestamp": [NOW] * rows,
                "model_name": [model] * rows,
                "model_version": ["1"] * rows,
                "features": struct,
                "prediction": [1.0] * rows,
            }
        )
        pq.write_table(table, root / "predictions" / "date=2026-01-01" / f"{name}.parquet")
    label = pa.table(
        {"request_id": ["old-demand"], "row_index": [1], "timestamp": [NOW], "label": ["5.0"]}
    )
    pq.write_table(label, root / "feedback" / "date=2026-01-01" / "part-1-a.parquet")


def test_a_log_of_the_earlier_layout_is_still_read_model_by_model(tmp_path: Path) -> None:
    _legacy_log(tmp_path / "log")
    open_store(None, tmp_path / "log").append_predictions([_record("new", [22.0])])
    read = read_model_log("demand", directory=tmp_path / "log", sources=["online"])
    assert read.rows["request_id"].tolist() == ["old-demand", "old-demand", "new"]
    assert read.features["temp"].tolist() == [20.0, 21.0, 22.0]
    assert read.rows["label"].tolist()[1] == 5.0 and set(read.rows["source"]) == {"online"}
    assert list(read_model_log("other", directory=tmp_path / "log").features.columns) == ["city"]


def test_a_sql_log_of_the_earlier_schema_reads_as_online(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    with sa.create_engine(url).begin() as connection:
        connection.execute(
            sa.text(
                "CREATE TABLE predictions (request_id TEXT, model_name TEXT, model_version TEXT,"
                " row_index INTEGER, timestamp FLOAT, features TEXT, prediction TEXT,"
                " probabilities TEXT)"
            )
        )
        connection.execute(
            sa.text(
                "INSERT INTO predictions VALUES ('old', 'demand', '1', 0, 1.0, '{\"temp\": 3.0}',"
                " '6.0', NULL)"
            )
        )
        connection.execute(
            sa.text(
                "CREATE TABLE feedback (request_id TEXT, row_index INTEGER, timestamp FLOAT,"
                " label TEXT)"
            )
        )
    rows = read_model_log("demand", url=url, sources=["online"]).rows
    assert rows["request_id"].tolist() == ["old"] and rows["source"].tolist() == ["online"]
    SqlStore(url).append_predictions([_record("new", [1.0])])  # the table gets its new columns
    assert len(read_model_log("demand", url=url).rows) == 2


def test_a_record_with_an_unsafe_model_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LogValueError, match=r"model '\.\./etc'"):
        open_store(None, tmp_path / "log").append_predictions([_typed("a", model="../etc")])
    assert not (tmp_path / "etc").exists()


def test_compaction_merges_a_past_day_into_one_file_without_losing_or_doubling_rows(
    tmp_path: Path,
) -> None:
    store = ParquetStore(tmp_path / "log")
    for i in range(5):
        store.append_predictions([_record(f"r{i}", [float(i)])])
    store.append_feedback([FeedbackRecord("r1", 0, 9.0, NOW, "demand")])
    before = read_model_log("demand", directory=tmp_path / "log").rows
    leftover = next((tmp_path / "log" / "predictions").rglob("part-*.parquet"))
    kept = leftover.read_bytes()
    assert store.compact(before_day="2026-01-02") == 5
    leftover.write_bytes(kept)  # a crash between the merged file's rename and the deletions
    after = read_model_log("demand", directory=tmp_path / "log").rows
    folder = leftover.parent
    assert [p.name.split("-")[0] for p in folder.glob("*.parquet")].count("compact") == 1
    pd.testing.assert_frame_equal(before, after)
    store.compact(before_day="2026-01-02")  # the leftover goes with the next compaction
    assert len(list(folder.glob("*.parquet"))) == 1
    assert store.compact(before_day="2026-01-01") == 0  # today's folders are left alone


def test_a_feature_sent_as_text_and_as_numbers_reads_as_text(tmp_path: Path) -> None:
    store = ParquetStore(tmp_path / "log")
    store.append_predictions([_record("a", [0.0])._replace(columns={"zone": [7]})])
    store.append_predictions([_record("b", [0.0])._replace(columns={"zone": ["north"]})])
    features = read_model_log("demand", directory=tmp_path / "log").features
    assert features["zone"].tolist() == ["7", "north"]
