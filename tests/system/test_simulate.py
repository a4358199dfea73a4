"""`mlops simulate` end to end: the real prediction service on loopback, flows on Prefect's test
server, MLflow on SQLite; a few hundred replayed summer hours are enough to close the loop."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from deployments.simulate import SimulationResult
from prefect_mlops.cli import app
from prefect_mlops.monitoring import DRIFT_DETECTED
from prefect_mlops.settings import Settings

pytestmark = pytest.mark.system


def test_simulate_detects_drift_retrains_and_serves_the_new_champion(
    settings: Settings, tmp_path: Path
) -> None:
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
    model = MlflowClient(settings.tracking_uri).get_registered_model("bikeshare-demand")
    assert str(model.aliases["champion"]) == "2"
    assert "loop closed: v1 -> v2 champion, served v2" in answer.output
