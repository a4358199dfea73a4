"""The `mlops` commands against a real MLflow registry and GX project in a temp folder."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sklearn.linear_model import LinearRegression
from typer.testing import CliRunner

from prefect_mlops.cli import app
from prefect_mlops.config import load_config
from prefect_mlops.expectations.run import validate_frame
from prefect_mlops.settings import Settings

ROOT = Path(__file__).resolve().parents[2]

NAME = "cli-model"


@pytest.fixture
def registry(settings: Settings) -> MlflowClient:
    """Three registered versions; v1 champion."""
    mlflow.set_tracking_uri(settings.tracking_uri)
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    x = np.arange(10.0).reshape(-1, 1)
    for _ in range(3):
        with mlflow.start_run():
            mlflow.sklearn.log_model(
                LinearRegression().fit(x, 2 * x.ravel()),
                name="model",
                registered_model_name=NAME,
                pip_requirements=["scikit-learn"],
            )
    client.set_registered_model_alias(NAME, "champion", "1")
    return client


def aliases(client: MlflowClient) -> dict[str, str]:
    return {a: str(v) for a, v in client.get_registered_model(NAME).aliases.items()}


def mlops(*args: str):
    return CliRunner().invoke(app, list(args))


def test_promote_keeps_previous_champion_reachable(registry: MlflowClient) -> None:
    result = mlops("promote", "3", "--model", NAME)
    assert result.exit_code == 0, result.output
    assert aliases(registry) == {"champion": "3", "previous-champion": "1"}
    assert registry.get_model_version(NAME, "3").tags["promotion_reason"] == "manual promotion"


def test_rollback_restores_previous_champion_in_one_step(registry: MlflowClient) -> None:
    mlops("promote", "2", "--model", NAME)
    result = mlops("rollback", "--model", NAME)
    assert result.exit_code == 0, result.output
    assert aliases(registry) == {"champion": "1", "previous-champion": "2"}


def test_promote_unknown_version_fails_and_moves_nothing(registry: MlflowClient) -> None:
    result = mlops("promote", "9", "--model", NAME)
    assert result.exit_code == 1
    assert "has no version '9'" in result.output
    assert aliases(registry) == {"champion": "1"}


def test_rollback_without_previous_champion_says_so(registry: MlflowClient) -> None:
    result = mlops("rollback", "--model", NAME)
    assert result.exit_code == 1
    assert "no 'previous-champion'" in result.output
    assert aliases(registry) == {"champion": "1"}


def test_suite_docs_renders_every_stored_validation(
    settings: Settings, bikeshare: pd.DataFrame
) -> None:
    config = load_config(ROOT / "configs" / "bikeshare.yaml")
    for batch in ("first", "second"):
        assert validate_frame(bikeshare, config, settings, "scoring", batch_id=batch).success
    result = mlops("suite", "docs")
    assert result.exit_code == 0, result.output
    index = Path(result.output.strip().removeprefix("file://"))
    assert index.is_relative_to(settings.gx_root) and index.name == "index.html"
    assert "scoring-first" in index.read_text() and "scoring-second" in index.read_text()
