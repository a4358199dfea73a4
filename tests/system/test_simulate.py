"""`mlops simulate` end to end: the real prediction service on loopback, flows on Prefect's test
server, MLflow on SQLite; a few hundred replayed summer hours are enough to close the loop.

It runs in a store where the demo already registered its champion (`make demo`'s model and
experiment), and keeps to its own model, experiment and Evidently project."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest
from evidently.ui.workspace import Workspace
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from deployments.simulate import SimulationResult
from prefect_mlops.cli import app
from prefect_mlops.config import load_config
from prefect_mlops.estimators import build_model
from prefect_mlops.features import infer_schema
from prefect_mlops.monitoring import DRIFT_DETECTED
from prefect_mlops.monitoring.publish import project_name
from prefect_mlops.packaging import log_sklearn_model
from prefect_mlops.results import CandidateSpec
from prefect_mlops.settings import Settings
from tests.conftest import BIKESHARE_CONFIG

pytestmark = pytest.mark.system
DEMO_MODEL = "bikeshare-demand"


def register_demo_champion(settings: Settings, year: pd.DataFrame) -> MlflowClient:
    """What `make demo` leaves: the demo's model trained on the whole year, champion v1, in its
    experiment (a plain ridge, registered the project's way, instead of the whole search)."""
    config = load_config(BIKESHARE_CONFIG)
    schema = infer_schema(year, config)
    spec = CandidateSpec(name="ridge", estimator="linear", params={}, index=0)
    model = build_model(spec, schema, 0).fit(year[schema.features], year[config.target])
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    experiment = client.create_experiment(
        config.experiment, artifact_location=settings.mlflow_artifact_dir.resolve().as_uri()
    )
    run = client.create_run(experiment)
    mlflow.set_tracking_uri(settings.tracking_uri)
    info = log_sklearn_model(model, year[schema.features].head(5), run.info.run_id)
    client.create_registered_model(DEMO_MODEL)
    version = client.create_model_version(DEMO_MODEL, source=info.model_uri, run_id=run.info.run_id)
    client.set_registered_model_alias(DEMO_MODEL, "champion", version.version)
    return client


def test_simulate_after_the_demo_detects_drift_retrains_and_serves_its_own_new_champion(
    settings: Settings, tmp_path: Path, bikeshare: pd.DataFrame
) -> None:
    client = register_demo_champion(settings, bikeshare)
    workdir = tmp_path / "simulation"
    answer = CliRunner().invoke(
        app, ["simulate", "--workdir", str(workdir), "--replay-rows", "600"]
    )
    assert answer.exit_code == 0, answer.output[-3000:]
    result = SimulationResult.model_validate_json((workdir / "simulation.json").read_text())

    summary = result.monitoring
    assert summary.current_rows == summary.labeled_rows == 600
    assert summary.alarm and DRIFT_DETECTED in summary.decision.events
    assert {"temp", "atemp", "season", "mnth"} <= set(summary.drifted_columns)
    assert len(summary.events) == len(summary.decision.events)  # emitted

    assert result.first_champion == "1"
    assert result.retrained and result.retrain_route == "direct call"
    assert result.retrain_reason == f"{DRIFT_DETECTED} {summary.events[0]}"
    assert result.new_champion == result.served_version_after == "2"
    simulated = client.get_registered_model(f"{DEMO_MODEL}-simulation")
    assert str(simulated.aliases["champion"]) == "2"
    assert summary.model_name == f"{DEMO_MODEL}-simulation"
    assert "loop closed: v1 -> v2 champion, served v2" in answer.output

    # The demo's model and experiment are as the demo left them.
    demo = client.get_registered_model(DEMO_MODEL)
    assert {a: str(v) for a, v in demo.aliases.items()} == {"champion": "1"}
    assert len(client.search_model_versions(f"name='{DEMO_MODEL}'")) == 1
    demo_experiment = client.get_experiment_by_name(DEMO_MODEL)
    assert len(client.search_runs([demo_experiment.experiment_id])) == 1
    simulation_experiment = client.get_experiment_by_name("bikeshare-simulation")
    assert client.search_runs([simulation_experiment.experiment_id])
    workspace = Workspace(str(settings.evidently_dir))
    assert workspace.search_project(project_name(f"{DEMO_MODEL}-simulation"))
    assert not workspace.search_project(project_name(DEMO_MODEL))
