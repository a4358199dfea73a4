"""The service's log writer isolates refused rows, spools through outages and counts both."""

from __future__ import annotations

import re
from pathlib import Path
from typing import cast

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from prefect_mlops.log_safety import read_dead_letters, spooled_files
from prefect_mlops.prediction_log import (
    FeedbackRecord,
    LogStore,
    PredictionRecord,
    open_store,
    read_prediction_log,
)
from serving.app import create_app
from serving.log_writer import PredictionLog
from serving.metrics import ServiceMetrics
from tests.prefect_mlops.test_log_safety import immutable
from tests.serving.conftest import CLASSIFIER, make_settings, row

NOW = 1_767_225_600.0
POISON = 2**64


def _record(i: int, hr: int) -> PredictionRecord:
    return PredictionRecord(f"r{i}", NOW, "demand", "1", {"hr": [hr]}, np.array([1.0]), None)


def metric(metrics: ServiceMetrics, name: str, table: str = "predictions") -> float:
    """One counter's value, read from the text exposition the service serves."""
    text = metrics.render().decode()
    found = re.search(
        rf'^mlops_serve_prediction_log_{name}_total{{table="{table}"}} (\S+)$', text, re.M
    )
    assert found, f"{name} is not exported"
    return float(found.group(1))


def _writer(store: LogStore, metrics: ServiceMetrics) -> PredictionLog:
    log = PredictionLog(store, metrics, flush_seconds=60)  # writes only on flush and close
    log.start()
    return log


@pytest.mark.parametrize("url", [None, "sqlite"])
def test_a_poisoned_row_costs_only_itself_and_is_counted(tmp_path: Path, url: str | None) -> None:
    store = open_store(url and f"sqlite:///{tmp_path / 'log.db'}", tmp_path / "log")
    metrics = ServiceMetrics()
    log = _writer(store, metrics)
    for i in range(300):  # one prepare batch and one write: the poison shares it with 299
        log.record(_record(i, POISON if i == 42 else 1))
    log.close()
    logged = read_prediction_log(url=getattr(store, "url", None), directory=tmp_path / "log")
    letters = read_dead_letters(store)
    assert len(logged) == 299 and [d.values["request_id"] for d in letters] == ["r42"]
    assert metric(metrics, "rows") == 299
    assert metric(metrics, "dead_lettered_rows") == 1
    assert metric(metrics, "lost_rows") == 0


def test_a_poisoned_label_costs_only_itself(tmp_path: Path) -> None:
    store = open_store(None, tmp_path / "log")
    metrics = ServiceMetrics()
    log = _writer(store, metrics)
    for i in range(8):
        log.record(FeedbackRecord(f"r{i}", 0, POISON if i == 5 else i, NOW))
    log.close()
    assert metric(metrics, "rows", "feedback") == 7
    assert metric(metrics, "dead_lettered_rows", "feedback") == 1


def test_rows_pending_in_a_sqlite_outage_survive_close_and_are_replayed(tmp_path: Path) -> None:
    database = tmp_path / "log.db"
    store = open_store(f"sqlite:///{database}", tmp_path / "log")
    store.append_predictions([_record(-1, 1)])  # the store exists, then turns read-only
    metrics = ServiceMetrics()
    with immutable(database):
        log = _writer(store, metrics)
        for i in range(200):
            log.record(_record(i, 1))
        log.flush()
        log.close()
    assert metric(metrics, "rows") == 0 and metric(metrics, "lost_rows") == 0
    assert 'spooled_rows_total{table="predictions"} 200.0' in metrics.render().decode()
    assert spooled_files(store)
    restarted = ServiceMetrics()
    again = _writer(open_store(f"sqlite:///{database}", tmp_path / "log"), restarted)
    again.flush()
    again.close()
    assert len(read_prediction_log(url=f"sqlite:///{database}")) == 201
    assert metric(restarted, "rows") == 200 and spooled_files(store) == []


def _answered(client: TestClient, rows: int = 2) -> str:
    response = client.post("/predict", json={"records": [row()] * rows})
    return response.json()["request_id"]


def _feedback(client: TestClient, **body: object) -> tuple[int, str | None]:
    response = client.post("/feedback", json=body)
    return response.status_code, response.json().get("field")


def test_feedback_for_an_unknown_request_is_refused(client: TestClient) -> None:
    assert _feedback(client, request_id="never-answered", label=1.0) == (400, "request_id")


def test_feedback_for_a_row_the_request_did_not_have_is_refused(client: TestClient) -> None:
    rid = _answered(client, rows=2)
    assert _feedback(client, request_id=rid, label=1.0, row_index=1)[0] == 202
    assert _feedback(client, request_id=rid, label=1.0, row_index=2) == (400, "row_index")
    assert _feedback(client, request_id=rid, label=1.0, row_index=10**30) == (400, "row_index")


@pytest.mark.parametrize("label", ["high", True, None, [1.0], 2**70])
def test_a_regressor_takes_only_finite_numbers(client: TestClient, label: object) -> None:
    assert _feedback(client, request_id=_answered(client), label=label) == (400, "label")


def test_a_classifier_takes_only_its_classes(classifier: TestClient) -> None:
    rid = _answered(classifier)
    assert _feedback(classifier, request_id=rid, label="maybe") == (400, "label")
    assert _feedback(classifier, request_id=rid, label=1) == (400, "label")
    assert _feedback(classifier, request_id=rid, label="yes")[0] == 202


def test_feedback_for_a_request_answered_before_a_restart_is_found_in_the_log(
    store, tmp_path: Path
) -> None:
    settings = make_settings(store, tmp_path, model_name=CLASSIFIER)
    with TestClient(create_app(settings)) as first:
        rid = _answered(first, rows=3)
    with TestClient(create_app(settings)) as second:
        assert _feedback(second, request_id=rid, label="no", row_index=2)[0] == 202
        assert _feedback(second, request_id=rid, label="no", row_index=3) == (400, "row_index")
        cast(FastAPI, second.app).state.log.flush()
    labels = read_prediction_log(directory=settings.log_dir).set_index("row_index")["label"]
    assert labels[2] == "no" and labels[:1].isna().all()


def test_the_writer_compacts_past_days_into_one_file(tmp_path: Path) -> None:
    store = open_store(None, tmp_path / "log")
    log = PredictionLog(store, ServiceMetrics(), flush_seconds=60, compact_seconds=0)
    log.start()
    for i in range(3):  # three flushes of rows stamped 2026-01-01: three files, then one
        log.record(_record(i, 1))
        log.flush()
    log.close()
    files = list((tmp_path / "log" / "predictions").rglob("*.parquet"))
    assert [f.name.split("-")[0] for f in files] == ["compact"]
    assert sorted(read_prediction_log(directory=tmp_path / "log")["request_id"]) == [
        "r0",
        "r1",
        "r2",
    ]
