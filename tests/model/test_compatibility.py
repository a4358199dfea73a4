"""Models logged by earlier versions of this package still load and predict identically."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.models import Model, infer_signature
from sklearn.pipeline import Pipeline

from prefect_mlops.packaging import load_pipeline, trusted_types
from prefect_mlops.results import CandidateSpec, FeatureSchema
from serving.engines import compile_onnx
from serving.model import choose_engine
from serving.schema import InputSchema
from tasks.train import build_model

ARTIFACTS = Path(__file__).parent / "artifacts"
CASES = sorted(p.name for p in ARTIFACTS.iterdir() if p.is_dir())


def probe(name: str) -> tuple[pd.DataFrame, dict[str, list]]:
    frame = pd.read_csv(ARTIFACTS / f"{name}.input.csv")
    expected = json.loads((ARTIFACTS / f"{name}.expected.json").read_text())
    return frame, expected


def typed_like_signature(frame: pd.DataFrame, model: Model) -> pd.DataFrame:
    """The probe with the dtypes the model was logged with (CSV reads text columns as object)."""
    types = {c["name"]: c["type"] for c in model.signature.inputs.to_dict()}
    out = frame.copy()
    for column, kind in types.items():
        if kind == "string":
            out[column] = out[column].astype(object).where(out[column].notna(), None)
    return out


@pytest.mark.parametrize("name", CASES)
def test_logged_model_predicts_as_when_it_was_logged(name: str):
    frame, expected = probe(name)
    path = ARTIFACTS / name
    pipeline = load_pipeline(str(path))
    frame = typed_like_signature(frame, Model.load(str(path)))
    if "probabilities" in expected:
        assert pipeline.predict(frame).tolist() == expected["predictions"]
        np.testing.assert_allclose(
            pipeline.predict_proba(frame), expected["probabilities"], rtol=1e-12
        )
    else:
        np.testing.assert_allclose(pipeline.predict(frame), expected["predictions"], rtol=1e-12)


@pytest.mark.parametrize("name", CASES)
def test_logged_model_compiles_for_serving_and_agrees(name: str):
    frame, expected = probe(name)
    path = str(ARTIFACTS / name)
    meta = Model.load(path)
    schema = InputSchema.from_signature(meta.signature)
    engine, note = choose_engine(
        load_pipeline(path), schema, meta.load_input_example(path), use_onnx=True
    )
    assert engine.name == "onnx", note
    frame = typed_like_signature(frame, meta)
    columns = {c: [None if pd.isna(v) else v for v in frame[c].tolist()] for c in schema.names}
    output = engine.predict(columns)
    if "probabilities" in expected:
        assert output.probabilities is not None
        np.testing.assert_allclose(output.probabilities, expected["probabilities"], atol=1e-9)
        assert [str(p) for p in output.predictions] == expected["predictions"]
    else:
        np.testing.assert_allclose(output.predictions, expected["predictions"], rtol=1e-9)


def test_loading_a_logged_model_does_not_import_prefect():
    code = (
        "import sys\n"
        "from prefect_mlops.packaging import load_pipeline\n"
        f"for path in {[str(ARTIFACTS / c) for c in CASES]!r}:\n"
        "    load_pipeline(path)\n"
        "loaded = sorted(m for m in sys.modules if m == 'prefect' or m.startswith('prefect.'))\n"
        "print(len(loaded))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "0"


@pytest.fixture
def fitted_today() -> tuple[Pipeline, pd.DataFrame]:
    """A string-label classifier built by today's preprocessing, with every kind of feature."""
    rng = np.random.default_rng(3)
    n = 120
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "colour": rng.choice(np.array(["red", "blue", None], dtype=object), n),
            "when": pd.date_range("2024-01-01", periods=n, freq="5h").astype(str),
        }
    )
    frame["label"] = np.where(frame["x"] > 0, "up", "down")
    schema = FeatureSchema(
        target="label",
        task="classification",
        numeric=["x"],
        categorical=["colour"],
        datetime=["when"],
    )
    spec = CandidateSpec(name="lr", estimator="logistic_regression", params={}, index=0)
    X = frame[schema.features]
    return build_model(spec, schema, 0).fit(X, frame["label"]), X


def test_todays_pipeline_references_no_task_module(fitted_today: tuple[Pipeline, pd.DataFrame]):
    import skops.io

    model, _ = fitted_today
    untrusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    assert not [t for t in untrusted if t.startswith("tasks.")]
    assert {
        "prefect_mlops.transformers.CategoryText",
        "prefect_mlops.transformers.DatetimeParts",
    } <= set(untrusted)
    assert set(untrusted) <= set(trusted_types(model))


def test_todays_pipeline_compiles_to_onnx(fitted_today: tuple[Pipeline, pd.DataFrame]):
    model, X = fitted_today
    schema = InputSchema.from_signature(infer_signature(X, model.predict(X)))
    engine = compile_onnx(model, schema, X.head(5))
    columns = {c: [None if pd.isna(v) else v for v in X[c].tolist()] for c in schema.names}
    output = engine.predict(columns)
    assert list(output.predictions) == list(model.predict(X))
    assert output.probabilities is not None
    np.testing.assert_allclose(output.probabilities, model.predict_proba(X), atol=1e-9)
