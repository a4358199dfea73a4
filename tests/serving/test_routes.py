"""Routes through the real app, serving a real model from a temporary MLflow store."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from mlflow.pyfunc.scoring_server import CONTENT_TYPE_CSV

from prefect_mlops.packaging import load_pipeline
from serving.app import create_app
from tests.serving.conftest import CLASSIFIER, REGRESSOR, make_settings, row, split_of


def test_predict_names_model_version_and_request_id(client: TestClient) -> None:
    response = client.post("/predict", json={"records": [row()]})
    body = response.json()
    assert response.status_code == 200
    assert (body["model_name"], body["model_version"]) == (REGRESSOR, "1")
    assert response.headers["x-model-version"] == "1"
    assert body["request_id"] == response.headers["x-request-id"]


def test_predict_matches_the_model_loaded_in_process(client: TestClient) -> None:
    records = [row(), row(temp=5.0, hr=23, weather="rain"), row(hum=None, season=4)]
    served = client.post("/predict", json={"records": records}).json()["predictions"]
    model = load_pipeline(f"models:/{REGRESSOR}@champion")
    expected = model.predict(pd.DataFrame(records).astype({"hum": float}))
    np.testing.assert_allclose(served, expected, rtol=1e-9)


def test_predict_uses_onnx_when_parity_holds(client: TestClient) -> None:
    assert client.get("/metadata").json()["engine"] == "onnx"


def test_predict_honours_a_client_request_id(client: TestClient) -> None:
    response = client.post("/predict", json={"records": [row()]}, headers={"x-request-id": "abc-1"})
    assert response.json()["request_id"] == "abc-1"


def test_classifier_answers_classes_and_probabilities(classifier: TestClient) -> None:
    body = classifier.post("/predict", json={"records": [row(), row(temp=2.0)]}).json()
    assert body["classes"] == ["no", "yes"]
    assert set(body["predictions"]) <= {"no", "yes"}
    assert [round(sum(p), 9) for p in body["probabilities"]] == [1.0, 1.0]


def test_unknown_category_is_scored_not_refused(client: TestClient) -> None:
    response = client.post("/predict", json={"records": [row(weather="snow")]})
    assert response.status_code == 200


def test_null_is_accepted_for_a_column_the_signature_marks_optional(client: TestClient) -> None:
    response = client.post("/predict", json={"records": [row(hum=None)]})
    assert response.status_code == 200


def test_null_is_refused_for_a_required_column(strict: TestClient) -> None:
    response = strict.post("/predict", json={"records": [row(temp=None)]})
    assert response.status_code == 400
    assert response.json()["field"] == "body.records[0].temp"
    assert "does not impute" in response.json()["message"]


def test_missing_column_is_named(strict: TestClient) -> None:
    record = row()
    del record["hr"]  # a feature the strict model does not impute
    response = strict.post("/predict", json={"records": [record]})
    assert response.status_code == 400
    assert response.json()["field"] == "body.records[0].hr"


def test_extra_column_is_named(client: TestClient) -> None:
    response = client.post("/predict", json={"records": [row(colour="red")]})
    assert response.status_code == 400
    assert response.json()["field"] == "body.records[0].colour"


def test_wrong_type_is_named(client: TestClient) -> None:
    response = client.post("/predict", json={"records": [row(), row(hr="eight")]})
    assert response.status_code == 400
    assert response.json()["field"] == "body.records[1].hr"


def _with_temp(token: bytes) -> bytes:
    return (
        b'{"records": [{"temp": ' + token + b', "hum": 0.1, "hr": 1, "season": 1, "weather": "x"}]}'
    )


@pytest.mark.parametrize("token", [b"Infinity", b"-Infinity"])
def test_infinite_number_is_refused(client: TestClient, token: bytes) -> None:
    response = client.post("/predict", content=_with_temp(token))
    assert response.status_code == 400
    assert response.json()["field"] == "body.records[0].temp"


def test_nan_is_refused_for_a_required_column(strict: TestClient) -> None:
    response = strict.post("/predict", content=_with_temp(b"NaN"))
    assert response.status_code == 400
    assert response.json()["field"] == "body.records[0].temp"


def test_nan_is_a_missing_value_for_an_imputed_column(client: TestClient) -> None:
    nan = client.post("/predict", content=_with_temp(b"NaN")).json()["predictions"]
    null = client.post("/predict", content=_with_temp(b"null")).json()["predictions"]
    assert nan == null


def test_empty_batch_is_refused(client: TestClient) -> None:
    response = client.post("/predict", json={"records": []})
    assert response.status_code == 400
    assert response.json()["field"] == "body.records"


def test_malformed_json_is_refused(client: TestClient) -> None:
    response = client.post("/invocations", content=b'{"dataframe_split": {')
    assert response.status_code == 400
    assert "malformed JSON" in response.json()["message"]


def test_body_over_the_limit_is_refused(store, tmp_path) -> None:
    settings = make_settings(store, tmp_path, max_body_bytes=1024)
    with TestClient(create_app(settings)) as client:
        response = client.post("/predict", json={"records": [row()] * 50})
    assert response.status_code == 413
    assert response.json()["field"] == "body"


def test_batch_over_the_row_limit_is_refused(store, tmp_path) -> None:
    with TestClient(create_app(make_settings(store, tmp_path, max_rows=2))) as client:
        response = client.post("/invocations", json={"dataframe_records": [row()] * 3})
    assert response.status_code == 400
    assert "limit of 2" in response.json()["message"]


@pytest.mark.parametrize(
    "payload",
    [
        {"dataframe_split": split_of([row(), row(hr=3)])},
        {"dataframe_records": [row(), row(hr=3)]},
        {"instances": [row(), row(hr=3)]},
        {"inputs": {k: [v, 3 if k == "hr" else v] for k, v in row().items()}},
    ],
    ids=["dataframe_split", "dataframe_records", "instances", "inputs"],
)
def test_invocations_accepts_each_mlflow_format(client: TestClient, payload: dict) -> None:
    expected = client.post("/predict", json={"records": [row(), row(hr=3)]}).json()["predictions"]
    response = client.post("/invocations", json=payload)
    assert response.json() == {"predictions": expected}


def test_invocations_refuses_two_formats_at_once(client: TestClient) -> None:
    payload = {"dataframe_records": [row()], "instances": [row()]}
    response = client.post("/invocations", json=payload)
    assert response.status_code == 400
    assert response.json()["field"] == "body"


def test_invocations_names_a_missing_split_column(strict: TestClient) -> None:
    split = split_of([{k: v for k, v in row().items() if k != "hr"}])  # hr is not imputed
    response = strict.post("/invocations", json={"dataframe_split": split})
    assert response.status_code == 400
    assert "'hr'" in response.json()["message"]


def test_invocations_names_the_row_and_column_of_a_bad_value(client: TestClient) -> None:
    response = client.post(
        "/invocations", json={"dataframe_split": split_of([row(), row(temp="x")])}
    )
    assert response.json()["field"] == "dataframe_split.data.temp[1]"


def _tensors(record: dict[str, object]) -> list[dict[str, object]]:
    kinds = {"temp": "FP64", "hum": "FP64", "hr": "INT64", "season": "INT64", "weather": "BYTES"}
    return [{"name": k, "shape": [1], "datatype": kinds[k], "data": [v]} for k, v in record.items()]


def test_v2_infer_returns_the_predictions_tensor(client: TestClient) -> None:
    expected = client.post("/predict", json={"records": [row()]}).json()["predictions"]
    body = client.post(
        f"/v2/models/{REGRESSOR}/infer", json={"id": "r1", "inputs": _tensors(row())}
    ).json()
    assert body["id"] == "r1" and body["model_version"] == "1"
    assert body["outputs"][0]["data"] == pytest.approx(expected)


def test_v2_infer_refuses_a_wrong_datatype(client: TestClient) -> None:
    tensors = _tensors(row())
    tensors[0]["datatype"] = "BYTES"
    response = client.post(f"/v2/models/{REGRESSOR}/infer", json={"inputs": tensors})
    assert response.status_code == 400
    assert response.json()["field"] == "inputs[0].datatype"


def test_v2_unknown_model_name_is_404(client: TestClient) -> None:
    response = client.post("/v2/models/other/infer", json={"inputs": _tensors(row())})
    assert response.status_code == 404
    assert "'other'" in response.json()["message"]


def test_v2_model_metadata_lists_signature_inputs(client: TestClient) -> None:
    body = client.get(f"/v2/models/{REGRESSOR}").json()
    assert {i["name"]: i["datatype"] for i in body["inputs"]} == {
        "temp": "FP64",
        "hum": "FP64",
        "hr": "INT64",
        "season": "INT64",
        "weather": "BYTES",
    }


def test_v2_health_routes_report_live_and_ready(client: TestClient) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").status_code == 200


def test_metadata_names_version_alias_lineage_and_signature(client: TestClient) -> None:
    body = client.get("/metadata").json()
    assert (body["name"], body["version"], body["alias"]) == (REGRESSOR, "1", "champion")
    assert body["tags"]["data_fingerprint"] == "abc123"
    assert "temp" in body["signature"]["inputs"]


def test_metrics_count_requests_rows_and_loaded_version(client: TestClient) -> None:
    client.post("/predict", json={"records": [row(), row()]})
    client.post("/predict", json={"records": []})
    text = client.get("/metrics").text
    assert 'mlops_serve_requests_total{route="/predict",status="200"} 1.0' in text
    assert 'mlops_serve_errors_total{route="/predict",status="400"} 1.0' in text
    assert 'mlops_serve_rows_scored_total{version="1"} 2.0' in text
    assert f'mlops_serve_model_loaded{{engine="onnx",name="{REGRESSOR}",version="1"}} 1.0' in text
    assert 'mlops_serve_request_seconds_count{route="/predict"} 2.0' in text


def test_model_that_cannot_load_reports_not_ready_with_reason(store, tmp_path) -> None:
    settings = make_settings(store, tmp_path, model_name="absent")
    with TestClient(create_app(settings)) as client:
        health = client.get("/health")
        predict = client.post("/predict", json={"records": [row()]})
        live = client.get("/health/live")
    assert health.status_code == 503 and "models:/absent@champion" in health.json()["reason"]
    assert predict.status_code == 503
    assert live.status_code == 200


def test_classifier_probabilities_sum_to_one_in_v2_tensor(classifier: TestClient) -> None:
    body = classifier.post(
        f"/v2/models/{CLASSIFIER}/infer", json={"inputs": _tensors(row())}
    ).json()
    probabilities = body["outputs"][1]
    assert probabilities["shape"] == [1, 2]
    assert math.isclose(sum(probabilities["data"]), 1.0)


def _csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def test_invocations_accepts_csv_as_mlflow_models_serve_does(client: TestClient) -> None:
    records = [row(), row(hr=3, hum=None), row(weather="snow", season=4)]
    expected = client.post("/predict", json={"records": records}).json()["predictions"]
    frame = pd.DataFrame(records)  # hum becomes NaN: written as an empty field
    response = client.post(
        "/invocations", content=_csv(frame), headers={"content-type": CONTENT_TYPE_CSV}
    )
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(response.json()["predictions"], expected, rtol=1e-12)


def test_csv_integer_column_written_as_floats_by_pandas_is_read(client: TestClient) -> None:
    frame = pd.DataFrame([row(hr=3), row(hr=5)]).astype({"hr": "float64"})  # "3.0"
    response = client.post(
        "/invocations", content=_csv(frame), headers={"content-type": "text/csv; charset=utf-8"}
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 2


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (b"", "csv", "header row"),
        (b"temp,hum,hr,season,weather\n", "csv", "empty"),
        (b"temp,hum,hr,season,weather\n21.5,0.4,8,2\n", "csv.data[0]", "expected 5 values"),
        (
            b"temp,hum,hr,season,weather\n21.5,0.4,8,2,clear\nwarm,0.4,8,2,clear\n",
            "csv.temp[1]",
            "'warm' is not a double",
        ),
        (b"temp,hum,hr,season,weather\n21.5,0.4,8.5,2,clear\n", "csv.hr[0]", "not a long"),
        (b'temp,hum,hr,season,weather\n21.5,0.4,8,2,"clear\n', "csv", "malformed CSV"),
        (b"temp,hum,hr,season,weather\n21.5,0.4,8,2,\xff\n", "csv", "not UTF-8"),
    ],
    ids=[
        "empty",
        "header only",
        "short row",
        "text in a number",
        "fraction in an integer",
        "unterminated quote",
        "not utf-8",
    ],
)
def test_bad_csv_gets_400_naming_the_problem(
    client: TestClient, body: bytes, field: str, words: str
) -> None:
    response = client.post("/invocations", content=body, headers={"content-type": "text/csv"})
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert words in response.json()["message"]


def test_required_value_missing_in_csv_names_the_cell(strict: TestClient) -> None:
    body = b"temp,hum,hr,season,weather\n21.5,0.4,8,2,clear\n,0.4,8,2,clear\n"
    response = strict.post("/invocations", content=body, headers={"content-type": "text/csv"})
    assert response.status_code == 400
    assert response.json()["field"] == "csv.temp[1]"


def test_invocations_refuses_other_content_types_with_415(client: TestClient) -> None:
    response = client.post(
        "/invocations", content=b"<rows/>", headers={"content-type": "application/xml"}
    )
    assert response.status_code == 415
    assert response.json()["field"] == "content-type"
    assert "text/csv" in response.json()["message"]
