"""A request may leave out the column of a feature the trained pipeline imputes: it reads as
all-null, in every protocol. A feature the pipeline cannot impute must be sent: left out, a 400
names it. The record schema (/metadata, the OpenAPI document behind /docs) requires only those."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from serving.errors import InputError
from serving.schema import ColumnSpec, InputSchema
from tests.serving.conftest import STRICT, Store, row, split_of
from tests.serving.test_missing_values import KINDS, _expected

# The strict model imputes season and weather (categorical), not temp, hum and hr.
IMPUTED, REQUIRED = ["season", "weather"], ["temp", "hum", "hr"]
RECORDS = [row(), row(temp=5.0, hr=23, weather="rain"), row(hum=0.9, season=4)]
PROTOCOLS = ["predict", "records", "split", "inputs", "csv", "infer"]


def without(records: list[dict[str, Any]], *names: str) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in names} for r in records]


def request(protocol: str, records: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """The path and body of the rows in one protocol, naming only the columns they have."""
    names = list(records[0])
    columns = {name: [r[name] for r in records] for name in names}
    tensors = [
        {"name": n, "shape": [len(records)], "datatype": KINDS[n], "data": columns[n]}
        for n in names
    ]
    csv = pd.DataFrame(records).to_csv(index=False).encode()
    return {
        "predict": ("/predict", {"json": {"records": records}}),
        "records": ("/invocations", {"json": {"dataframe_records": records}}),
        "split": ("/invocations", {"json": {"dataframe_split": split_of(records)}}),
        "inputs": ("/invocations", {"json": {"inputs": columns}}),
        "csv": ("/invocations", {"content": csv, "headers": {"content-type": "text/csv"}}),
        "infer": (f"/v2/models/{STRICT}/infer", {"json": {"inputs": tensors}}),
    }[protocol]


def served(answer: Any, protocol: str) -> list[Any]:
    body = answer.json()
    return body["outputs"][0]["data"] if protocol == "infer" else body["predictions"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_imputed_features_column_left_out_reads_as_all_null(
    strict: TestClient, store: Store, protocol: str
) -> None:
    path, body = request(protocol, without(RECORDS, *IMPUTED))
    answer = strict.post(path, **body)
    assert answer.status_code == 200, answer.text
    nulls = [{**r, **dict.fromkeys(IMPUTED)} for r in RECORDS]
    expected = _expected(store, STRICT, nulls)  # the registered pipeline on explicit nulls
    np.testing.assert_allclose(served(answer, protocol), expected, rtol=1e-9)
    assert not np.allclose(expected, _expected(store, STRICT, RECORDS))  # the nulls told


@pytest.mark.parametrize(
    ("protocol", "field"),
    [
        ("predict", "body.records[0].hr"),
        ("records", "dataframe_records[0].hr"),
        ("split", "dataframe_split.columns"),
        ("inputs", "inputs"),
        ("csv", "csv.header"),
        ("infer", "inputs"),
    ],
)
def test_a_feature_the_model_cannot_impute_left_out_is_refused_by_name(
    strict: TestClient, protocol: str, field: str
) -> None:
    path, body = request(protocol, without(RECORDS, "hr", "season"))
    answer = strict.post(path, **body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["field"] == field
    message = answer.json()["message"]
    assert "does not impute" in message
    if field.endswith("hr"):
        assert "a record must have this feature" in message
    else:  # the columnar formats name every such column left out, and no imputed one
        assert "missing columns ['hr']" in message


def test_the_record_schema_requires_only_what_the_model_cannot_impute(
    strict: TestClient, client: TestClient
) -> None:
    record = strict.get("/metadata").json()["input_schema"]
    assert record["required"] == REQUIRED
    assert list(record["properties"]) == REQUIRED + IMPUTED
    document = strict.get("/openapi.json").json()
    predict = document["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert predict["schema"]["properties"]["records"]["items"]["required"] == REQUIRED
    # The regressor imputes every feature: a record requires none.
    assert "required" not in client.get("/metadata").json()["input_schema"]


def test_a_batch_with_no_column_at_all_is_empty() -> None:
    schema = InputSchema(
        [ColumnSpec(name="x", type="double", required=False), ColumnSpec(name="n", type="long")]
    )
    assert schema.validate_records([{"n": 1}]) == {"x": [None], "n": [1]}
    assert schema.validate_columns({"n": [1, 2]}) == {"x": [None, None], "n": [1, 2]}
    with pytest.raises(InputError, match=r"missing columns \['n'\]"):
        schema.validate_columns({"x": [1.0]})
    imputed = InputSchema([ColumnSpec(name="x", type="double", required=False)])
    with pytest.raises(InputError, match="the batch is empty"):
        imputed.validate_columns({})
