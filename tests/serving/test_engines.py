"""The ONNX fast path reproduces scikit-learn, and refuses (falls back) when it cannot."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mlflow.models import infer_signature

from prefect_mlops.config import parse_config
from prefect_mlops.results import CandidateSpec
from serving.engines import CompileError, SklearnEngine, compile_onnx, frame_to_columns
from serving.schema import InputSchema
from tasks.features import infer_schema
from tasks.train import build_model
from tests.serving.conftest import _config, synthetic_frame


def _fitted(task: str, estimator: str, frame: pd.DataFrame, **extra: object):
    target = "demand" if task == "regression" else "churned"
    config = parse_config({**_config(task, target, estimator, "m"), **extra})
    schema = infer_schema(frame, config)
    model = build_model(CandidateSpec(name="c", estimator=estimator, params={}, index=0), schema, 0)
    X = frame[schema.features]
    model.fit(X, frame[target])
    return model, X, InputSchema.from_signature(infer_signature(X, model.predict(X)))


def test_onnx_regressor_matches_sklearn_on_rows_with_gaps() -> None:
    model, X, schema = _fitted("regression", "linear", synthetic_frame())
    engine = compile_onnx(model, schema, X.head(5))
    served = engine.predict(frame_to_columns(X, schema)).predictions
    np.testing.assert_allclose(served, model.predict(X), rtol=1e-9)


def test_onnx_classifier_matches_sklearn_labels_and_probabilities() -> None:
    model, X, schema = _fitted("classification", "logistic_regression", synthetic_frame())
    output = compile_onnx(model, schema, X.head(5)).predict(frame_to_columns(X, schema))
    assert list(output.predictions) == list(model.predict(X))
    np.testing.assert_allclose(output.probabilities, model.predict_proba(X), atol=1e-9)


def test_datetime_features_are_refused_by_the_compiler() -> None:
    frame = synthetic_frame().assign(when=pd.date_range("2024-01-01", periods=200, freq="h"))
    model, X, schema = _fitted("regression", "linear", frame, datetime_features=["when"])
    with pytest.raises(CompileError, match="datetime_parts"):
        compile_onnx(model, schema, X.head(5))


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
    from serving.engines import check_parity

    with pytest.raises(CompileError, match="differ"):
        check_parity(engine, SklearnEngine(model, schema), X.head(5), schema)
