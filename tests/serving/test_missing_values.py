"""Missing values are served for every feature the trained pipeline imputes, in every protocol;
features it cannot take missing get a 400 naming them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from mlflow.models import Model

from prefect_mlops.packaging import load_packaged
from serving.errors import InputError
from serving.schema import InputSchema
from tests.serving.conftest import REGRESSOR, STRICT, Store, row, split_of

ARTIFACTS = Path(__file__).parents[1] / "model" / "artifacts"
KINDS = {"temp": "FP64", "hum": "FP64", "hr": "INT64", "season": "INT64", "weather": "BYTES"}
# Each row misses another feature; the last misses them all.
RECORDS = [
    row(temp=None),
    row(hum=None, season=3),
    row(hr=None, weather="rain"),
    row(season=None, hr=23),
    row(weather=None, temp=2.0),
    {name: None for name in row()},
]


def _expected(store: Store, name: str, records: list[dict[str, object]]) -> np.ndarray:
    """The registered pipeline on the rows, integer columns kept integers (pandas' NA)."""
    frame = pd.DataFrame(records).astype(
        {"temp": "float64", "hum": "float64", "hr": "Int64", "season": "Int64", "weather": object}
    )
    return np.asarray(load_packaged(f"models:/{name}@champion", store.uri).model.predict(frame))


def _infer(records: list[dict[str, object]]) -> dict[str, object]:
    return {
        "inputs": [
            {
                "name": name,
                "shape": [len(records)],
                "datatype": KINDS[name],
                "data": [r[name] for r in records],
            }
            for name in KINDS
        ]
    }


def _csv(records: list[dict[str, object]]) -> bytes:
    return pd.DataFrame(records).to_csv(index=False).encode()  # None -> an empty field


def test_signature_marks_every_imputed_feature_optional(store: Store) -> None:
    for name, optional in [
        (REGRESSOR, {"temp", "hum", "hr", "season", "weather"}),
        (STRICT, {"season", "weather"}),
    ]:
        signature = load_packaged(f"models:/{name}@champion", store.uri).metadata.signature
        assert {c.name for c in signature.inputs.inputs if not c.required} == optional, name


@pytest.mark.parametrize("protocol", ["predict", "split", "records", "csv", "infer"])
def test_every_protocol_serves_missing_values_as_the_pipeline_predicts(
    client: TestClient, store: Store, protocol: str
) -> None:
    requests = {
        "predict": ("/predict", {"json": {"records": RECORDS}}),
        "split": ("/invocations", {"json": {"dataframe_split": split_of(RECORDS)}}),
        "records": ("/invocations", {"json": {"dataframe_records": RECORDS}}),
        "csv": (
            "/invocations",
            {"content": _csv(RECORDS), "headers": {"content-type": "text/csv"}},
        ),
        "infer": (f"/v2/models/{REGRESSOR}/infer", {"json": _infer(RECORDS)}),
    }
    path, body = requests[protocol]
    response = client.post(path, **body)  # type: ignore[arg-type]
    assert response.status_code == 200, response.text
    answer = response.json()
    served = answer["outputs"][0]["data"] if protocol == "infer" else answer["predictions"]
    np.testing.assert_allclose(served, _expected(store, REGRESSOR, RECORDS), rtol=1e-9)


def test_imputed_and_required_features_are_told_apart(strict: TestClient, store: Store) -> None:
    served = strict.post("/predict", json={"records": [row(season=None, weather=None)]})
    assert served.status_code == 200, served.text
    np.testing.assert_allclose(
        served.json()["predictions"],
        _expected(store, STRICT, [row(season=None, weather=None)]),
        rtol=1e-9,
    )
    for path, body, field in [
        ("/invocations", {"dataframe_split": split_of([row(), row(hr=None)])}, "hr[1]"),
        (f"/v2/models/{STRICT}/infer", _infer([row(hum=None)]), "inputs.hum[0]"),
        ("/invocations", {"dataframe_records": [row(temp=None)]}, "dataframe_records[0].temp"),
    ]:
        refused = strict.post(path, json=body)
        assert refused.status_code == 400, path
        assert refused.json()["field"].endswith(field)
        assert "missing value is not accepted" in refused.json()["message"]


def test_a_model_logged_by_0_1_0_keeps_its_inferred_signature() -> None:
    schema = InputSchema.from_signature(Model.load(str(ARTIFACTS / "regression_hgb")).signature)
    record = {"x1": None, "x2": 3.0, "colour": "blue", "code": 2, "when": "2024-01-01 00:00:00"}
    assert schema.validate_records([record])["x1"] == [None]  # optional in its example
    with pytest.raises(InputError, match="missing value is not accepted") as refused:
        schema.validate_records([{**record, "colour": None}])
    assert refused.value.field == "records[0].colour"
