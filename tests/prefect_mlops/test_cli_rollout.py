"""`mlops rollout status` and `abort` against a real MLflow registry in a temp folder."""

from __future__ import annotations

from pathlib import Path

from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from prefect_mlops.cli import app
from prefect_mlops.rollout import RolloutState, read_rollout, write_rollout
from prefect_mlops.settings import Settings

NAME = "cli-rollout"


def registry(settings: Settings, folder: Path) -> MlflowClient:
    """Two versions of a model (v1 champion), registered without artifacts: the rollout state
    lives in the registry only."""
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    client.create_registered_model(NAME)
    for _ in range(2):
        client.create_model_version(NAME, source=folder.as_uri())
    client.set_registered_model_alias(NAME, "champion", "1")
    return client


def test_status_prints_the_rollout_and_abort_returns_traffic_to_the_champion(
    settings: Settings, tmp_path: Path
) -> None:
    client = registry(settings, tmp_path)
    runner = CliRunner()
    state = RolloutState(version="2", mode="canary", share=0.1, step="canary 10%", flow_run_id="f")
    write_rollout(client, NAME, state)

    shown = runner.invoke(app, ["rollout", "status", NAME])
    assert shown.exit_code == 0, shown.output
    assert "champion v1" in shown.output
    assert "rollout of v2: mode canary, challenger share 10%, step canary 10%" in shown.output

    aborted = runner.invoke(app, ["rollout", "abort", NAME])
    assert aborted.exit_code == 0, aborted.output
    assert "rollout of cli-rollout v2 (canary 10%) aborted" in aborted.output
    assert read_rollout(client, NAME) is None
    assert "rollout" not in client.get_model_version(NAME, "2").aliases
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"

    again = runner.invoke(app, ["rollout", "status", NAME])
    assert "no rollout: all traffic goes to the champion" in again.output


def test_a_bad_model_name_is_refused_by_name() -> None:
    result = CliRunner().invoke(app, ["rollout", "abort", "../etc"])
    assert result.exit_code == 1
    assert "MODEL" in result.output
