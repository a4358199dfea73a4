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
from prefect_mlops.config import PipelineConfig, load_config
from prefect_mlops.estimators import build_model
from prefect_mlops.expectations.run import validate_frame
from prefect_mlops.features import infer_schema
from prefect_mlops.packaging import log_sklearn_model
from prefect_mlops.results import CandidateSpec
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


def project_frames(output: str) -> list[str]:
    """Traceback lines pointing into this project's code (a traceback of its error).

    A "--- Logging error ---" report is skipped: Prefect's console handler still writes to an
    earlier CliRunner's closed stream (a test artifact; one process runs one command).
    """
    frames, in_report = [], False
    for line in output.splitlines():
        in_report = (in_report or line == "--- Logging error ---") and not line.startswith(
            "Arguments:"
        )
        inside = line.strip().startswith(f'File "{ROOT}/') and "/.venv/" not in line
        if inside and not in_report:
            frames.append(line)
    return frames


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


@pytest.fixture
def champion(settings: Settings, fast_config: PipelineConfig, bikeshare: pd.DataFrame) -> str:
    """A ridge on a few hundred bikeshare rows, registered the project's way as the config's
    model, alias champion (no training run: no lineage to monitor against)."""
    rows = bikeshare.head(400)
    schema = infer_schema(rows, fast_config)
    spec = CandidateSpec(name="ridge", estimator="linear", params={}, index=0)
    model = build_model(spec, schema, 0).fit(rows[schema.features], rows[fast_config.target])
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    experiment = client.create_experiment(
        "cli", artifact_location=settings.mlflow_artifact_dir.resolve().as_uri()
    )
    run = client.create_run(experiment)
    mlflow.set_tracking_uri(settings.tracking_uri)
    info = log_sklearn_model(model, rows[schema.features].head(5), run.info.run_id)
    name = fast_config.registered_model_name
    client.create_registered_model(name)
    version = client.create_model_version(name, source=info.model_uri, run_id=run.info.run_id)
    client.set_registered_model_alias(name, "champion", version.version)
    return name


def test_score_writes_a_csv_s_predictions_to_parquet_with_the_champion(
    champion: str, fast_config_path: Path, bikeshare: pd.DataFrame, tmp_path: Path
) -> None:
    bikeshare.drop(columns=["bikers"]).head(300).to_csv(tmp_path / "new.csv", index=False)
    out = tmp_path / "scores.parquet"
    result = mlops(
        "score", "-c", str(fast_config_path), "--source", str(tmp_path / "new.csv"),
        "--destination", str(out), "--no-log",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"scored 300 rows in 1 chunk(s) with {champion} v1 -> {out}" in result.output
    assert len(pd.read_parquet(out)) == 300


def test_scoring_a_header_only_file_is_one_line_naming_the_file(
    champion: str,
    fast_config_path: Path,
    bikeshare: pd.DataFrame,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLOPS_LOG_LEVEL", "INFO")  # put back after --debug below
    empty = tmp_path / "empty.csv"
    bikeshare.head(0).to_csv(empty, index=False)
    args = ["score", "-c", str(fast_config_path), "--source", str(empty)]
    result = mlops(*args, "--destination", str(tmp_path / "out.csv"))
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1  # the rest are Prefect's run logs
    assert str(empty) in errors[0] and f"{champion} v1" in errors[0]
    assert not project_frames(result.stderr)

    debugged = mlops("--debug", *args, "--destination", str(tmp_path / "out.csv"))
    assert debugged.exit_code == 1 and project_frames(debugged.stderr)


def test_monitor_refuses_a_window_and_a_dataset_at_once(fast_config_path: Path) -> None:
    result = mlops("monitor", "-c", str(fast_config_path), "--hours", "2", "--dataset", "x.csv")
    assert result.exit_code == 1
    assert "hours and days apply to the prediction log, not to dataset_path" in result.stderr


def test_monitoring_failure_is_one_line_naming_the_model_version(
    champion: str, fast_config_path: Path, bikeshare: pd.DataFrame, tmp_path: Path
) -> None:
    bikeshare.head(200).to_csv(tmp_path / "july.csv", index=False)
    args = ["monitor", "-c", str(fast_config_path), "--dataset", str(tmp_path / "july.csv")]
    result = mlops(*args)
    assert result.exit_code == 1
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert f"{champion} v1 (@champion)" in line and not project_frames(result.stderr)
