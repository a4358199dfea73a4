"""Shared fixtures: a Prefect test server, and per-test MLflow, GX and artifact folders."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from prefect_mlops.config import PipelineConfig, load_config
from prefect_mlops.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
BIKESHARE_CSV = ROOT / "data" / "bikeshare" / "bikeshare_hourly_2011.csv"
BIKESHARE_CONFIG = ROOT / "configs" / "bikeshare.yaml"


@pytest.fixture(scope="session", autouse=True)
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect server (SQLite) for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(autouse=True)
def isolated_mlflow_globals() -> Iterator[None]:
    """No test leaves MLflow's process-wide tracking or registry URI set for the next one."""
    import os

    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils

    outer = os.environ.get("MLFLOW_TRACKING_URI")
    pickle_setting = os.environ.get("MLFLOW_ALLOW_PICKLE_DESERIALIZATION")
    yield
    if pickle_setting is None:  # flows switch MLflow's pickle loading off for their process
        os.environ.pop("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", None)
    else:
        os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = pickle_setting
    mlflow.set_tracking_uri(None)  # also unsets MLFLOW_TRACKING_URI: put back what was there
    if outer is not None:
        os.environ["MLFLOW_TRACKING_URI"] = outer
    registry_utils._registry_uri = None


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, already migrated MLflow SQLite store; copying it is faster than migrating."""
    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def settings(tmp_path: Path, mlflow_template: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings pointing at a fresh MLflow store, artifact root and copy of the GX project."""
    db = tmp_path / "mlflow.db"
    shutil.copy(mlflow_template, db)
    gx_root = tmp_path / "great_expectations"
    shutil.copytree(
        ROOT / "great_expectations", gx_root, ignore=shutil.ignore_patterns("uncommitted")
    )
    env = {
        "MLFLOW_TRACKING_URI": f"sqlite:///{db}",
        "MLOPS_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
        "MLOPS_GX_ROOT": str(gx_root),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings()


@pytest.fixture(scope="session")
def bikeshare() -> pd.DataFrame:
    return pd.read_csv(BIKESHARE_CSV)


def fast_config_dict(**overrides: object) -> dict:
    """The bikeshare config with a small search, so a flow test takes seconds."""
    raw = yaml.safe_load(BIKESHARE_CONFIG.read_text())
    raw["source"]["path"] = str(BIKESHARE_CSV)
    raw["tuning"] = {"cv_folds": 2, "max_configs_per_candidate": 1}
    raw["candidates"] = [
        {"name": "ridge", "estimator": "linear", "search_space": {"alpha": [1.0]}},
        {
            "name": "hist_gradient_boosting",
            "estimator": "hist_gradient_boosting",
            "params": {"max_iter": 60},
        },
    ]
    raw.update(overrides)
    return raw


def write_config(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture
def fast_config_path(tmp_path: Path) -> Path:
    return write_config(tmp_path / "bikeshare-fast.yaml", fast_config_dict())


@pytest.fixture
def fast_config(fast_config_path: Path) -> PipelineConfig:
    return load_config(fast_config_path)
