"""The one model loader: skops or ONNX only, others refused unread, skops under our trust list."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from prefect_mlops.lineage import RunOrigin
from prefect_mlops.packaging import (
    UnsafeModelError,
    load_packaged,
    load_pipeline,
    log_sklearn_model,
    version_description,
)
from prefect_mlops.results import (
    ChampionScore,
    Evaluation,
    GateCheck,
    GateDecision,
    PromotionDecision,
)
from prefect_mlops.runtime import refuse_pickle_loading
from prefect_mlops.settings import Settings

X = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": [0.5, 0.1, 0.3, 0.2]})
Y = np.array([1.0, 2.0, 3.0, 4.0])


@pytest.fixture(autouse=True)
def _pickle_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs as a service or flow does: MLflow's pickle loading off."""
    # setenv (not delenv) so that the value the test leaves is undone even when none was set
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    refuse_pickle_loading()


def _save(model: object, path: Path, **kwargs: object) -> Path:
    # save_model serialises; only loading is what the setting guards
    mlflow.sklearn.save_model(model, str(path), input_example=X.head(2), **kwargs)
    return path


def _edit_mlmodel(path: Path, **flavors: dict[str, object]) -> None:
    meta = yaml.safe_load((path / "MLmodel").read_text())
    for flavor, values in flavors.items():
        meta["flavors"].setdefault(flavor, {}).update(values)
    (path / "MLmodel").write_text(yaml.safe_dump(meta))


def test_pickle_loading_is_switched_off_for_the_process() -> None:
    assert os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] == "false"
    from mlflow.environment_variables import MLFLOW_ALLOW_PICKLE_DESERIALIZATION

    assert MLFLOW_ALLOW_PICKLE_DESERIALIZATION.get() is False


def test_a_skops_model_loads_with_its_example(tmp_path: Path) -> None:
    model = make_pipeline(LinearRegression()).fit(X, Y)
    path = _save(model, tmp_path / "m", serialization_format="skops")
    packaged = load_packaged(str(path))
    assert np.allclose(packaged.model.predict(X), model.predict(X))
    assert list(packaged.input_example.columns) == ["a", "b"]


@pytest.mark.parametrize("declared", ["pickle", "cloudpickle"])
def test_a_pickle_model_is_refused_naming_its_format(tmp_path: Path, declared: str) -> None:
    model = LinearRegression().fit(X, Y)
    path = _save(model, tmp_path / "m", serialization_format="skops")
    _edit_mlmodel(path, sklearn={"serialization_format": declared})
    with pytest.raises(UnsafeModelError, match=rf"{tmp_path / 'm'} is stored as '{declared}'"):
        load_pipeline(str(path))


def test_a_missing_format_is_read_as_pickle_and_refused(tmp_path: Path) -> None:
    path = _save(LinearRegression().fit(X, Y), tmp_path / "m", serialization_format="skops")
    meta = yaml.safe_load((path / "MLmodel").read_text())
    del meta["flavors"]["sklearn"]["serialization_format"]
    (path / "MLmodel").write_text(yaml.safe_dump(meta))
    with pytest.raises(UnsafeModelError, match="'pickle'"):
        load_pipeline(str(path))


def test_a_skops_file_trusting_a_dangerous_type_in_its_mlmodel_is_refused(
    tmp_path: Path,
) -> None:
    # The MLmodel lists os.system as trusted; MLflow would pass that list to skops.
    model = make_pipeline(FunctionTransformer(os.system), LinearRegression())
    path = _save(
        model, tmp_path / "m", serialization_format="skops", skops_trusted_types=["posix.system"]
    )
    with pytest.raises(UnsafeModelError, match=r"types not trusted here: \['posix.system'\]"):
        load_pipeline(str(path))


def test_an_onnx_flavor_loaded_by_another_module_is_refused(tmp_path: Path) -> None:
    path = _save(LinearRegression().fit(X, Y), tmp_path / "m", serialization_format="skops")
    meta = yaml.safe_load((path / "MLmodel").read_text())
    meta["flavors"] = {
        "onnx": {"data": "model.onnx"},
        "python_function": {"loader_module": "mlflow.sklearn", "model_path": "model.skops"},
    }
    (path / "MLmodel").write_text(yaml.safe_dump(meta))
    with pytest.raises(UnsafeModelError, match=re.escape("'onnx' with loader 'mlflow.sklearn'")):
        load_pipeline(str(path))


def test_a_model_file_outside_the_model_folder_is_refused(tmp_path: Path) -> None:
    path = _save(LinearRegression().fit(X, Y), tmp_path / "m", serialization_format="skops")
    (tmp_path / "elsewhere.skops").write_bytes((path / "model.skops").read_bytes())
    _edit_mlmodel(path, sklearn={"pickled_model": "../elsewhere.skops"})
    with pytest.raises(UnsafeModelError, match="is not in the model folder"):
        load_pipeline(str(path))


def test_logging_a_model_with_pickle_off_warns_nothing_and_it_loads(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    model = make_pipeline(LinearRegression()).fit(X, Y)
    client = mlflow.MlflowClient(settings.tracking_uri)
    run = client.create_run(client.create_experiment("p", (settings.local_root / "a").as_uri()))
    mlflow.set_tracking_uri(settings.tracking_uri)
    with caplog.at_level(logging.WARNING, logger="mlflow"):
        info = log_sklearn_model(model, X, run.info.run_id)
    assert not [r for r in caplog.records if "serving input" in r.getMessage()]
    assert np.allclose(load_pipeline(info.model_uri, settings.tracking_uri).predict(X), Y)


def test_the_signature_marks_optional_exactly_the_features_the_model_takes_missing() -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer

    from prefect_mlops.packaging import model_signature

    imputed = ColumnTransformer([("a", SimpleImputer(), ["a"]), ("b", "passthrough", ["b"])])
    model = make_pipeline(imputed, LinearRegression()).fit(X, Y)
    example = X.assign(a=[np.nan, 2.0, 3.0, 4.0])  # a null in a, none in b
    signature = model_signature(model, example)
    assert {c.name: c.required for c in signature.inputs.inputs} == {"a": False, "b": True}


def test_a_model_logged_off_any_active_run_lands_in_its_runs_experiment_under_its_name(
    settings: Settings,
) -> None:
    model = make_pipeline(LinearRegression()).fit(X, Y)
    client = mlflow.MlflowClient(settings.tracking_uri)
    experiment = client.create_experiment("named", (settings.local_root / "n").as_uri())
    run = client.create_run(experiment)
    mlflow.set_tracking_uri(settings.tracking_uri)
    info = log_sklearn_model(model, X, run.info.run_id, name="demand", params={"k": "1"})
    logged = mlflow.get_logged_model(info.model_id)
    assert (logged.experiment_id, logged.name, logged.source_run_id) == (
        experiment,
        "demand",
        run.info.run_id,
    )
    assert logged.params == {"k": "1"}
    outputs = client.get_run(run.info.run_id).outputs.model_outputs
    assert [o.model_id for o in outputs] == [info.model_id]


def test_a_versions_description_states_why_it_was_not_promoted() -> None:
    decision = GateDecision(
        checks=[
            GateCheck(rule="rmse <= 150", passed=True, detail="rmse = 57.11"),
            GateCheck(rule="no worse than champion", passed=True, detail="within 2%"),
        ],
        champion=ChampionScore(
            version="3",
            metrics={"rmse": 56.0},
            challenger_metrics={"rmse": 57.110111780618396},
        ),
    )
    promotion = PromotionDecision(promote=False, reason="rmse 57.11 is not better than v3's 56")
    origin = RunOrigin(flow_run_id="f1", flow_run_name="brave-cat", flow_run_url="http://p/f1")
    evaluation = Evaluation(metrics={"rmse": 57.110111780618396, "r2": 0.77123})
    text = version_description(decision, promotion, evaluation, origin, "abc:1729")
    assert text.startswith("**Not promoted (champion kept)**: rmse 57.11 is not better")
    assert "[brave-cat](http://p/f1)" in text and "holdout `abc:1729`" in text
    assert "### Model gate: BLESSED" in text and "| pass | rmse <= 150 | rmse = 57.11 |" in text
    assert "| rmse | 57.11 |" in text and "| r2 | 0.7712 |" in text
    assert "### Challenger vs champion v3" in text and "| rmse | 57.11 | 56 |" in text
    assert "57.1101" not in text  # numbers are rounded
