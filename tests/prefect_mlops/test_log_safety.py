"""Row-level isolation and the spool, on the real Parquet and SQLite stores."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from prefect_mlops.log_safety import (
    log_isolated,
    prepare_rows,
    read_dead_letters,
    replay_spool,
    spill,
    spooled_files,
    write_dead_letters,
    write_rows,
)
from prefect_mlops.prediction_log import (
    FeedbackRecord,
    LogStore,
    PredictionRecord,
    open_store,
    read_prediction_log,
)

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
POISON = 2**64  # representable neither by Arrow's int64 nor by orjson


@contextmanager
def immutable(path: Path) -> Iterator[None]:
    """The folder or file refuses every write, even to root (a store outage)."""
    subprocess.run(["chattr", "+i", str(path)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def _stores(tmp_path: Path) -> dict[str, LogStore]:
    return {
        "parquet": open_store(None, tmp_path / "log"),
        "sqlite": open_store(f"sqlite:///{tmp_path / 'log.db'}", tmp_path / "log"),
    }


def _read(store: LogStore, tmp_path: Path):
    return read_prediction_log(url=getattr(store, "url", None), directory=tmp_path / "log")


def _one_row(i: int, hr: int) -> PredictionRecord:
    columns: dict[str, list[Any]] = {"hr": [hr], "weather": ["mist"]}
    return PredictionRecord(f"r{i}", NOW, "demand", "1", columns, np.array([float(i)]), None)


def _log(store: LogStore, records: list[PredictionRecord]) -> tuple[int, list]:
    prepared, refused = prepare_rows(store, "predictions", records)
    outcome = write_rows(store, "predictions", prepared)
    write_dead_letters(store, refused + outcome.dead)
    return outcome.written, refused + outcome.dead


@pytest.mark.parametrize("kind", ["parquet", "sqlite"])
def test_a_poisoned_row_among_300_leaves_299_written_and_1_dead_lettered(
    tmp_path: Path, kind: str
) -> None:
    store = _stores(tmp_path)[kind]
    records = [_one_row(i, POISON if i == 137 else i % 24) for i in range(300)]
    written, _ = _log(store, records)
    log = _read(store, tmp_path)
    letters = read_dead_letters(store)
    assert written == 299 and len(log) == 299 and "r137" not in set(log["request_id"])
    assert len(letters) == 1 and letters[0].table == "predictions"
    assert letters[0].values["request_id"] == "r137"
    assert letters[0].values["features"]["hr"] == POISON  # the original value, exact
    assert "64-bit" in letters[0].reason or "too large" in letters[0].reason


@pytest.mark.parametrize("kind", ["parquet", "sqlite"])
def test_a_poisoned_row_inside_one_request_keeps_the_other_rows_and_their_indexes(
    tmp_path: Path, kind: str
) -> None:
    store = _stores(tmp_path)[kind]
    hours = [i % 24 for i in range(300)]
    hours[200] = POISON
    record = PredictionRecord(
        "big", NOW, "demand", "1", {"hr": hours}, np.arange(300, dtype=float), None
    )
    _, letters = _log(store, [record])
    log = _read(store, tmp_path).sort_values("row_index")
    assert list(log["row_index"]) == [i for i in range(300) if i != 200]
    assert list(log["prediction"]) == [float(i) for i in range(300) if i != 200]
    assert [d.values["row_index"] for d in letters] == [200]


@pytest.mark.parametrize("kind", ["parquet", "sqlite"])
def test_a_poisoned_feedback_batch_keeps_the_good_labels(tmp_path: Path, kind: str) -> None:
    store = _stores(tmp_path)[kind]
    store.append_predictions([_one_row(i, 1) for i in range(8)])
    labels = [FeedbackRecord(f"r{i}", 0, POISON if i == 3 else float(i), NOW) for i in range(8)]
    prepared, refused = prepare_rows(store, "feedback", labels)
    assert write_rows(store, "feedback", prepared).written == 7
    write_dead_letters(store, refused)
    log = _read(store, tmp_path).set_index("request_id")
    assert log["label"].notna().sum() == 7 and np.isnan(log.loc["r3", "label"])
    assert [d.values["label"] for d in read_dead_letters(store)] == [POISON]


def test_an_outage_keeps_every_row_pending_instead_of_dead_lettering(tmp_path: Path) -> None:
    store = open_store(None, tmp_path / "log")
    (tmp_path / "log").mkdir()
    prepared, _ = prepare_rows(store, "predictions", [_one_row(i, 1) for i in range(50)])
    with immutable(tmp_path / "log"):
        outcome = write_rows(store, "predictions", prepared)
    assert outcome.written == 0 and outcome.dead == [] and outcome.outage
    assert sum(chunk.num_rows for _, chunk in outcome.pending) == 50


@pytest.mark.parametrize("kind", ["parquet", "sqlite"])
def test_spooled_rows_are_replayed_once_the_store_is_back(tmp_path: Path, kind: str) -> None:
    store = _stores(tmp_path)[kind]
    prepared, _ = prepare_rows(store, "predictions", [_one_row(i, 1) for i in range(20)])
    assert spill(store, "predictions", prepared) == 20
    assert store.spool_dir == tmp_path / "log_spool" and spooled_files(store)
    outcomes = replay_spool(store)
    assert outcomes["predictions"].written == 20 and spooled_files(store) == []
    assert sorted(_read(store, tmp_path)["request_id"]) == sorted(f"r{i}" for i in range(20))
    assert replay_spool(store) == {}  # nothing twice


def test_replay_during_an_outage_keeps_the_spool(tmp_path: Path) -> None:
    database = tmp_path / "log.db"
    store = open_store(f"sqlite:///{database}", tmp_path / "log")
    store.append_predictions([_one_row(0, 1)])  # the file exists, then turns read-only
    prepared, _ = prepare_rows(store, "predictions", [_one_row(i, 1) for i in range(1, 6)])
    spill(store, "predictions", prepared)
    with immutable(database):
        assert replay_spool(store)["predictions"].outage
    assert len(spooled_files(store)) == 1
    replay_spool(store)
    assert len(_read(store, tmp_path)) == 6 and spooled_files(store) == []


def test_the_store_knows_how_many_rows_a_request_had(tmp_path: Path) -> None:
    for store in _stores(tmp_path).values():
        record = PredictionRecord("a", NOW, "m", "1", {"hr": [1, 2, 3]}, np.ones(3), None)
        store.append_predictions([record])
        assert store.logged_rows("a") == 3 and store.logged_rows("nope") == 0


@pytest.mark.parametrize("kind", ["parquet", "sqlite"])
def test_a_poisoned_row_of_a_batch_chunk_is_dead_lettered_and_the_rest_written(
    tmp_path: Path, kind: str
) -> None:
    store = _stores(tmp_path)[kind]
    hours: list[Any] = [i % 24 for i in range(300)]
    hours[42] = POISON
    columns = {"hr": hours, "weather": ["mist", float("nan")] * 150}  # NaN in a string column
    chunk = PredictionRecord(
        "batch-1-0", NOW, "demand", "1", columns, np.zeros(300), None, 0, "batch"
    )
    outcome = log_isolated(store, "predictions", [chunk])
    log = _read(store, tmp_path)
    assert outcome.written == 299 and not outcome.outage and len(log) == 299
    assert set(log["source"]) == {"batch"} and log["weather"].isna().sum() == 150
    (letter,) = read_dead_letters(store)
    assert letter.values["row_index"] == 42 and letter.values["source"] == "batch"
    assert "64-bit" in letter.reason or "too large" in letter.reason


def test_a_spooled_chunk_is_replayed_into_its_own_model_folder(tmp_path: Path) -> None:
    store = open_store(None, tmp_path / "log")
    prepared, _ = prepare_rows(store, "predictions", [_one_row(0, 1)])
    spill(store, "predictions", prepared)
    replay_spool(store)
    (file,) = (tmp_path / "log" / "predictions").rglob("part-*.parquet")
    assert file.parent.relative_to(tmp_path / "log" / "predictions").as_posix() == (
        "model=demand/version=1/day=2026-01-01/source=online"
    )
