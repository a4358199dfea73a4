"""The ONNX fast path reproduces scikit-learn, and refuses (falls back) when it cannot."""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from mlflow.models import infer_signature

from prefect_mlops.config import PipelineConfig, parse_config
from prefect_mlops.estimators import build_model
from prefect_mlops.features import infer_schema
from prefect_mlops.packaging import load_pipeline, model_signature
from prefect_mlops.results import CandidateSpec
from serving.app import create_app
from serving.engines import (
    CompileError,
    SklearnEngine,
    check_parity,
    compile_onnx,
    frame_to_columns,
)
from serving.model import choose_engine
from serving.schema import InputSchema
from tests.serving.conftest import (
    Store,
    _config,
    make_settings,
    register,
    synthetic_frame,
    with_timestamps,
)

TREES = ["hist_gradient_boosting", "random_forest", "extra_trees"]


def _fitted(task: str, estimator: str, frame: pd.DataFrame, **extra: object):
    target = "demand" if task == "regression" else "churned"
    config = parse_config({**_config(task, target, estimator, "m"), **extra})
    schema = infer_schema(frame, config)
    model = build_model(CandidateSpec(name="c", estimator=estimator, params={}, index=0), schema, 0)
    X = frame[schema.features]
    model.fit(X, frame[target])
    return model, X, InputSchema.from_signature(model_signature(model, X))


def test_onnx_regressor_matches_sklearn_on_rows_with_gaps() -> None:
    model, X, schema = _fitted("regression", "linear", synthetic_frame())
    engine = compile_onnx(model, schema, X.head(5))
    served = engine.predict(frame_to_columns(X, schema)).predictions
    np.testing.assert_allclose(served, model.predict(X), rtol=1e-9)


@pytest.mark.parametrize(
    ("task", "estimator"),
    [("regression", "linear"), ("classification", "logistic_regression")],
)
def test_onnx_matches_sklearn_with_nulls_in_every_feature(task: str, estimator: str) -> None:
    model, X, schema = _fitted(task, estimator, synthetic_frame())
    assert all(not c.required for c in schema.columns)  # every feature is imputed
    columns = _hard_rows(X, schema)
    got = compile_onnx(model, schema, X.head(5)).predict(columns)
    want = SklearnEngine(model, schema).predict(columns)
    if task == "regression":
        np.testing.assert_allclose(got.predictions, want.predictions, rtol=1e-9)
    else:
        assert list(got.predictions) == list(want.predictions)
        np.testing.assert_allclose(got.probabilities, want.probabilities, atol=1e-12)


def test_sklearn_engine_keeps_integer_categories_of_a_batch_with_a_null() -> None:
    model, X, schema = _fitted("regression", "linear", synthetic_frame())
    columns = frame_to_columns(X.head(4), schema)
    alone = SklearnEngine(model, schema).predict(columns).predictions
    columns = {
        name: [*values, None if name == "season" else values[0]] for name, values in columns.items()
    }
    with_null = SklearnEngine(model, schema).predict(columns).predictions
    np.testing.assert_allclose(with_null[:4], alone, rtol=1e-12)  # 2 stays "2", not "2.0"


def test_onnx_classifier_matches_sklearn_labels_and_probabilities() -> None:
    model, X, schema = _fitted("classification", "logistic_regression", synthetic_frame())
    output = compile_onnx(model, schema, X.head(5)).predict(frame_to_columns(X, schema))
    assert list(output.predictions) == list(model.predict(X))
    np.testing.assert_allclose(output.probabilities, model.predict_proba(X), atol=1e-9)


def _hard_rows(X: pd.DataFrame, schema: InputSchema) -> dict[str, list]:
    """Every row of X, then the same rows with gaps in every feature (an integer-coded category
    included), unseen categories and missing times."""
    columns = frame_to_columns(X, schema)
    rows = len(X)
    hard = {name: list(values) for name, values in columns.items()}
    for i in range(rows):
        if i % 3 == 0:
            hard["hum"][i] = None
        if i % 7 == 4:
            hard["temp"][i] = hard["hr"][i] = None
        if i % 8 == 5:
            hard["season"][i] = hard["weather"][i] = None
        if i % 4 == 1:
            hard["weather"][i] = "snow"  # never seen in training
        if i % 5 == 2:
            hard["season"][i] = 9
        if "when" in hard and i % 6 == 3:
            hard["when"][i] = None
    return {name: columns[name] + hard[name] for name in columns}


@pytest.mark.parametrize("estimator", TREES)
@pytest.mark.parametrize("task", ["regression", "classification"])
def test_onnx_tree_models_with_datetime_features_match_sklearn(task: str, estimator: str) -> None:
    model, X, schema = _fitted(
        task, estimator, with_timestamps(synthetic_frame(400)), datetime_features=["when"]
    )
    engine = compile_onnx(model, schema, X.head(5))
    columns = _hard_rows(X, schema)
    got = engine.predict(columns)
    want = SklearnEngine(model, schema).predict(columns)
    assert len(got.predictions) == 2 * len(X)
    if task == "regression":
        np.testing.assert_allclose(got.predictions, want.predictions, rtol=1e-9, atol=1e-9)
    else:
        assert list(got.predictions) == list(want.predictions)
        np.testing.assert_allclose(got.probabilities, want.probabilities, rtol=1e-9, atol=1e-12)


def test_onnx_datetime_features_given_as_text_match_sklearn() -> None:
    frame = with_timestamps(synthetic_frame(300))
    frame["when"] = frame["when"].dt.strftime("%Y-%m-%dT%H:%M:%S")  # as read from a CSV
    model, X, schema = _fitted(
        "regression", "hist_gradient_boosting", frame, datetime_features=["when"]
    )
    assert schema.column("when").type == "string"
    engine = compile_onnx(model, schema, X.head(5))
    columns = frame_to_columns(X, schema)
    columns["when"][:4] = ["2024-02-30T00:00:00", "not a date", "2024-03-01 08:00", None]
    got = engine.predict(columns).predictions
    np.testing.assert_allclose(got, SklearnEngine(model, schema).predict(columns).predictions)


def test_onnx_hist_gradient_boosting_with_datetime_has_no_python_fallback() -> None:
    model, X, schema = _fitted(
        "regression",
        "hist_gradient_boosting",
        with_timestamps(synthetic_frame()),
        datetime_features=["when"],
    )
    engine = compile_onnx(model, schema, X.head(5))
    assert engine.name == "onnx"
    assert "when__hour" in {i.name for i in engine._session.get_inputs()}


def test_sklearn_engine_serves_what_onnx_cannot() -> None:
    frame = synthetic_frame().assign(when=pd.date_range("2024-01-01", periods=200, freq="h"))
    model, X, schema = _fitted("regression", "linear", frame, datetime_features=["when"])
    served = SklearnEngine(model, schema).predict(frame_to_columns(X, schema)).predictions
    np.testing.assert_allclose(served, model.predict(X), rtol=1e-12)


def test_parity_check_rejects_an_engine_that_predicts_differently() -> None:
    frame = synthetic_frame()
    model, X, schema = _fitted("regression", "linear", frame)
    other, _, _ = _fitted("regression", "linear", frame.assign(demand=frame["demand"] * 2))
    engine = compile_onnx(other, schema, X.head(5))  # parity with itself holds

    with pytest.raises(CompileError, match="differ"):
        check_parity(engine, SklearnEngine(model, schema), X.head(5), schema)


def test_parity_check_covers_rows_with_nulls() -> None:
    model, X, schema = _fitted("regression", "linear", synthetic_frame())
    engine = compile_onnx(model, schema, X.head(5))
    imputes_else = copy.deepcopy(model)
    imputes_else.named_steps["preprocess"].named_transformers_["numeric"]["impute"].statistics_ += 9
    example = X.dropna().head(5)  # the example alone agrees: it has no gaps

    with pytest.raises(CompileError, match=r"with nulls in \['temp', 'hum'"):
        check_parity(engine, SklearnEngine(imputes_else, schema), example, schema)


def test_served_hist_gradient_boosting_with_datetime_uses_onnx_and_matches_sklearn(
    store: Store, tmp_path: Path
) -> None:
    frame = with_timestamps(synthetic_frame(400))
    register(
        store,
        "hgb-when",
        estimator="hist_gradient_boosting",
        frame=frame,
        datetime_features=["when"],
    )
    rows = frame.drop(columns=["demand", "churned"])
    rows.loc[rows.index % 3 == 0, "hum"] = np.nan
    rows.loc[rows.index % 4 == 1, "weather"] = "snow"  # unseen in training
    records = [
        {
            k: (None if pd.isna(v) else v.isoformat() if isinstance(v, pd.Timestamp) else v)
            for k, v in record.items()
        }
        for record in rows.to_dict(orient="records")
    ]
    settings = make_settings(store, tmp_path, model_name="hgb-when")
    with TestClient(create_app(settings)) as client:
        assert client.get("/metadata").json()["engine"] == "onnx"
        response = client.post("/predict", json={"records": records})
    assert response.status_code == 200, response.text
    pipeline = load_pipeline("models:/hgb-when/1")
    want = pipeline.predict(rows.astype({"when": "datetime64[ns]"}))
    np.testing.assert_allclose(response.json()["predictions"], want, rtol=1e-9)


def test_bikeshare_hist_gradient_boosting_champion_compiles_to_onnx(
    fast_config: PipelineConfig, bikeshare: pd.DataFrame
) -> None:
    schema = infer_schema(bikeshare, fast_config)
    spec = CandidateSpec(
        name="hgb", estimator="hist_gradient_boosting", params={"max_iter": 200}, index=0
    )
    X = bikeshare[schema.features]
    model = build_model(spec, schema, 0).fit(X, bikeshare["bikers"])
    signature = InputSchema.from_signature(infer_signature(X, model.predict(X)))
    engine = compile_onnx(model, signature, X.head(5))
    served = engine.predict(frame_to_columns(X, signature)).predictions
    np.testing.assert_allclose(served, model.predict(X), rtol=1e-9, atol=1e-9)


def test_tree_model_onnx_cannot_write_falls_back_to_sklearn_saying_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    model, X, schema = _fitted("regression", "hist_gradient_boosting", synthetic_frame())
    model.set_params(model__loss="poisson").fit(X, synthetic_frame()["demand"])
    with caplog.at_level(logging.WARNING, logger="serving.model"):
        engine, note = choose_engine(model, schema, X.head(5), use_onnx=True)
    assert engine.name == "sklearn"
    assert "LogLink" in note and "LogLink" in caplog.text
