"""The prediction log: durable, joined with feedback, and never in the way of a response."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from fastapi.testclient import TestClient

from prefect_mlops.prediction_log import read_prediction_log
from serving.app import create_app
from tests.serving.conftest import REGRESSOR, make_settings, row


def _predict(client: TestClient, *records: dict) -> dict:
    return client.post("/predict", json={"records": list(records)}).json()


def test_every_row_is_logged_with_features_prediction_and_version(client: TestClient) -> None:
    answer = _predict(client, row(temp=1.5), row(temp=2.5, weather="rain"))
    client.app.state.log.flush()
    log = read_prediction_log(directory=client.app.state.settings.log_dir)
    assert list(log["request_id"]) == [answer["request_id"]] * 2
    assert list(log["row_index"]) == [0, 1]
    assert list(log["temp"]) == [1.5, 2.5] and list(log["weather"]) == ["mist", "rain"]
    assert list(log["prediction"]) == answer["predictions"]
    assert set(log["model_name"]) == {REGRESSOR} and set(log["model_version"]) == {"1"}


def test_parquet_log_is_partitioned_by_model_version_day_and_source(client: TestClient) -> None:
    _predict(client, row())
    client.app.state.log.flush()
    root: Path = client.app.state.settings.log_dir
    (file,) = (root / "predictions").rglob("part-*.parquet")
    model, version, day, source = file.relative_to(root / "predictions").parts[:-1]
    assert (model, version, source) == (f"model={REGRESSOR}", "version=1", "source=online")
    assert day.startswith("day=20")


def test_feedback_is_filed_under_the_served_model(client: TestClient) -> None:
    answer = _predict(client, row())
    client.post("/feedback", json={"request_id": answer["request_id"], "label": 3.0})
    client.app.state.log.flush()
    root: Path = client.app.state.settings.log_dir
    (file,) = (root / "feedback").rglob("part-*.parquet")
    assert file.relative_to(root / "feedback").parts[0] == f"model={REGRESSOR}"


def test_feedback_label_is_joined_by_request_id(client: TestClient) -> None:
    first = _predict(client, row())
    _predict(client, row(hr=2))
    accepted = client.post("/feedback", json={"request_id": first["request_id"], "label": 42.0})
    client.app.state.log.flush()
    log = read_prediction_log(directory=client.app.state.settings.log_dir).set_index("request_id")
    assert accepted.status_code == 202
    assert log.loc[first["request_id"], "label"] == 42.0
    assert log["label"].isna().sum() == 1


def test_labels_from_a_file_are_joined_by_request_id(client: TestClient) -> None:
    answer = _predict(client, row())
    client.app.state.log.flush()
    labels = pd.DataFrame({"request_id": [answer["request_id"]], "label": [99.0]})
    log = read_prediction_log(directory=client.app.state.settings.log_dir, labels=labels)
    assert list(log["label"]) == [99.0]


def test_feedback_without_request_id_is_refused(client: TestClient) -> None:
    response = client.post("/feedback", json={"label": 1})
    assert response.status_code == 400
    assert response.json()["field"] == "request_id"


def test_sql_log_stores_predictions_and_feedback(store, tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    with TestClient(create_app(make_settings(store, tmp_path, log_url=url))) as client:
        answer = _predict(client, row())
        client.post("/feedback", json={"request_id": answer["request_id"], "label": 7})
        client.app.state.log.flush()
    log = read_prediction_log(url=url)
    assert list(log["prediction"]) == answer["predictions"]
    assert list(log["label"]) == [7] and list(log["temp"]) == [21.5]


def test_failing_store_still_serves_and_counts_the_failure(store, tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'missing-dir' / 'log.db'}"  # the folder does not exist
    with TestClient(create_app(make_settings(store, tmp_path, log_url=url))) as client:
        response = client.post("/predict", json={"records": [row()]})
        client.app.state.log.flush()
        metrics = client.get("/metrics").text
    assert response.status_code == 200
    assert 'mlops_serve_prediction_log_failures_total{kind="write"}' in metrics


def test_rows_kept_after_a_failure_are_written_once_the_store_recovers(store, tmp_path) -> None:
    folder = tmp_path / "later"
    url = f"sqlite:///{folder / 'log.db'}"
    with TestClient(create_app(make_settings(store, tmp_path, log_url=url))) as client:
        answer = _predict(client, row())
        client.app.state.log.flush()
        folder.mkdir()
        client.app.state.log.flush()
    assert list(read_prediction_log(url=url)["request_id"]) == [answer["request_id"]]
