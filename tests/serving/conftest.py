"""Real models in a temporary MLflow store, registered the way the training flow does it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from mlflow.tracking import MlflowClient

from prefect_mlops.config import parse_config
from prefect_mlops.estimators import build_model
from prefect_mlops.features import infer_schema
from prefect_mlops.packaging import log_sklearn_model
from prefect_mlops.results import CandidateSpec
from serving.app import create_app
from serving.settings import ServeSettings

os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

REGRESSOR = "demand"
CLASSIFIER = "churn"
# A regressor whose numbers are not imputed: temp, hum and hr must not be null (season and
# weather still go through the categorical imputer).
STRICT = "demand-strict"


@dataclass(frozen=True)
class Store:
    """A temporary tracking store and the models registered in it."""

    uri: str
    root: Path
    client: MlflowClient


def synthetic_frame(rows: int = 200, seed: int = 0) -> pd.DataFrame:
    """Numeric, integer-coded categorical and text columns, with a few gaps."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "temp": rng.normal(20, 5, rows),
            "hum": rng.uniform(0, 1, rows),
            "hr": rng.integers(0, 24, rows),
            "season": rng.integers(1, 5, rows),
            "weather": rng.choice(["clear", "mist", "rain"], rows),
        }
    )
    frame.loc[::17, "hum"] = np.nan
    frame["demand"] = 3 * frame["temp"] + 10 * frame["hr"] + frame["season"] * 5
    frame["churned"] = np.where(frame["temp"] + rng.normal(0, 3, rows) > 20, "yes", "no")
    return frame


def with_timestamps(frame: pd.DataFrame) -> pd.DataFrame:
    """The synthetic frame with a datetime feature `when`, missing in row 2 (so in the example)."""
    when = pd.Series(pd.date_range("2024-01-01", periods=len(frame), freq="37min"))
    return frame.assign(when=when.mask(frame.index % 23 == 2))


def _config(task: str, target: str, estimator: str, name: str) -> dict:
    return {
        "name": name,
        "task": task,
        "target": target,
        "source": {"kind": "csv", "path": "unused.csv"},
        "categorical_features": ["season", "weather"],
        "exclude": [c for c in ("demand", "churned") if c != target],
        "candidates": [{"name": estimator, "estimator": estimator}],
        "gate": {"primary_metric": "rmse" if task == "regression" else "accuracy"},
        "validation": {"suite": name},
        "registered_model_name": name,
    }


def register(
    store: Store,
    name: str,
    task: str = "regression",
    estimator: str = "linear",
    shift: float = 0.0,
    alias: str | None = "champion",
    frame: pd.DataFrame | None = None,
    datetime_features: list[str] | None = None,
    strict: bool = False,
) -> str:
    """Fit, log (skops, signature, example) and register a model version; return its number."""
    frame = synthetic_frame() if frame is None else frame
    if strict:
        frame = frame.fillna({"hum": 0.5})
    target = "demand" if task == "regression" else "churned"
    raw = _config(task, target, estimator, name)
    config = parse_config({**raw, "datetime_features": datetime_features or []})
    schema = infer_schema(frame, config)
    model = build_model(
        CandidateSpec(name=estimator, estimator=estimator, params={}, index=0), schema, 0
    )
    if strict:
        model.set_params(preprocess__numeric__impute="passthrough")
    y = frame[target] + shift if task == "regression" else frame[target]
    X = frame[schema.features]
    model.fit(X, y)
    experiment = store.client.get_experiment_by_name(name) or None
    experiment_id = (
        experiment.experiment_id
        if experiment
        else store.client.create_experiment(name, artifact_location=(store.root / "art").as_uri())
    )
    run = store.client.create_run(experiment_id)
    info = log_sklearn_model(model, X.head(5), run.info.run_id)
    store.client.set_terminated(run.info.run_id)
    with contextlib.suppress(mlflow.exceptions.MlflowException):  # exists after the first
        store.client.create_registered_model(name)
    version = store.client.create_model_version(
        name,
        source=info.model_uri,
        run_id=run.info.run_id,
        model_id=info.model_id,
        tags={"data_fingerprint": "abc123", "config_hash": config.fingerprint()},
    ).version
    if alias:
        store.client.set_registered_model_alias(name, alias, version)
    return str(version)


@pytest.fixture(autouse=True, scope="module")
def _restore_pickle_setting() -> Iterator[None]:
    """The app switches pickle loading off for its process; undo it after each module
    (module-scoped, so it outlives the module-scoped apps of tests/serving/test_fast_lane.py)."""
    name = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"
    before = os.environ.get(name)
    yield
    if before is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = before


@pytest.fixture(scope="session")
def _template_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated store with a regressor and a classifier, copied per test module."""
    root = tmp_path_factory.mktemp("mlflow-template")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        store = Store(uri, root, MlflowClient(tracking_uri=uri))
        register(store, REGRESSOR)
        register(store, CLASSIFIER, task="classification", estimator="logistic_regression")
        register(store, STRICT, strict=True)
    finally:
        if previous is None:
            os.environ.pop("MLFLOW_TRACKING_URI")
        else:
            os.environ["MLFLOW_TRACKING_URI"] = previous
    return root


@pytest.fixture
def store(_template_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    """A private copy of the template store (artifacts stay in the template folder)."""
    import shutil

    shutil.copy(_template_store / "mlflow.db", tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return Store(uri, _template_store, MlflowClient(tracking_uri=uri))


def make_settings(store: Store, tmp_path: Path, **overrides: Any) -> ServeSettings:
    """Settings serving the regressor from `store`, logging under `tmp_path`, no polling."""
    values: dict[str, Any] = {
        "model_name": REGRESSOR,
        "tracking_uri": store.uri,
        "poll_seconds": 0,
        "log_dir": tmp_path / "log",
        "log_flush_seconds": 0.05,
    }
    values.update(overrides)
    return ServeSettings(**values)


@pytest.fixture
def client(store: Store, tmp_path: Path) -> Iterator[TestClient]:
    """The real app serving the regressor's champion, without auth."""
    with TestClient(create_app(make_settings(store, tmp_path))) as test_client:
        yield test_client


def row(**changes: object) -> dict[str, object]:
    """One valid record of the synthetic schema."""
    record: dict[str, object] = {"temp": 21.5, "hum": 0.4, "hr": 8, "season": 2, "weather": "mist"}
    record.update(changes)
    return record


@pytest.fixture
def strict(store: Store, tmp_path: Path) -> Iterator[TestClient]:
    """The real app serving a regressor that refuses nulls in its numeric features."""
    with TestClient(create_app(make_settings(store, tmp_path, model_name=STRICT))) as test_client:
        yield test_client


@pytest.fixture
def classifier(store: Store, tmp_path: Path) -> Iterator[TestClient]:
    """The real app serving the classifier's champion."""
    settings = make_settings(store, tmp_path, model_name=CLASSIFIER)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def split_of(records: list[dict[str, object]]) -> dict[str, object]:
    """The same rows in MLflow's `dataframe_split` format."""
    columns = list(records[0])
    return {"columns": columns, "data": [[r[c] for c in columns] for r in records]}
