"""Integers that do not fit the signature's type are refused at the request, naming the field."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from serving.protocols.invocations import CSV_TYPE
from tests.serving.conftest import row, split_of

TOO_BIG = 2**63  # one past the largest int64 ("long" in the signature)
BEYOND_U64 = 2**64 + 1  # orjson reads it as a float: the message must still be the range
FITS = "does not fit a 64-bit integer"


@pytest.mark.parametrize("value", [TOO_BIG, -(2**63) - 1, BEYOND_U64])
def test_predict_refuses_an_integer_out_of_range(client: TestClient, value: int) -> None:
    response = client.post("/predict", json={"records": [row(), row(hr=value)]})
    assert response.status_code == 400
    assert response.json()["field"] == "body.records[1].hr"
    assert FITS in response.json()["message"]


def test_predict_accepts_the_largest_int64(client: TestClient) -> None:
    response = client.post("/predict", json={"records": [row(season=2**63 - 1)]})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("value", [TOO_BIG, BEYOND_U64])
def test_invocations_json_refuses_an_integer_out_of_range(client: TestClient, value: int) -> None:
    split = client.post("/invocations", json={"dataframe_split": split_of([row(hr=value)])})
    records = client.post("/invocations", json={"dataframe_records": [row(hr=value)]})
    assert split.status_code == 400 and records.status_code == 400
    assert split.json()["field"] == "dataframe_split.data.hr[0]"
    assert records.json()["field"] == "dataframe_records[0].hr"
    assert FITS in split.json()["message"] and FITS in records.json()["message"]


@pytest.mark.parametrize("value", [TOO_BIG, BEYOND_U64])
def test_invocations_csv_refuses_an_integer_out_of_range(client: TestClient, value: int) -> None:
    body = f"temp,hum,hr,season,weather\n21.5,0.4,{value},2,mist\n".encode()
    response = client.post("/invocations", content=body, headers={"content-type": CSV_TYPE})
    assert response.status_code == 400
    assert response.json()["field"] == "csv.hr[0]"
    assert f"{value} {FITS}" in response.json()["message"]


def test_csv_keeps_the_largest_int64_exact(client: TestClient) -> None:
    body = f"temp,hum,hr,season,weather\n21.5,0.4,8,{2**63 - 1},mist\n".encode()
    response = client.post("/invocations", content=body, headers={"content-type": CSV_TYPE})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("value", [TOO_BIG, BEYOND_U64])
def test_v2_infer_refuses_an_integer_out_of_range(client: TestClient, value: int) -> None:
    kinds = {"temp": "FP64", "hum": "FP64", "hr": "INT64", "season": "INT64", "weather": "BYTES"}
    tensors = [
        {"name": c, "shape": [1], "datatype": kinds[c], "data": [v]}
        for c, v in row(hr=value).items()
    ]
    response = client.post("/v2/models/demand/infer", json={"inputs": tensors})
    assert response.status_code == 400
    assert response.json()["field"] == "inputs.hr[0]"
    assert FITS in response.json()["message"]
