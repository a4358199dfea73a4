"""`mlops deploy --config`: each model's deployments and retrain trigger, several models on one
server (the session's Prefect test server), created by the real `prefect deploy`."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL
from typer.testing import CliRunner

from deployments.setup import ensure_work_pool
from deployments.simulate import retrain_triggers
from prefect_mlops.cli import app
from prefect_mlops.settings import Settings
from tests.conftest import fast_config_dict, write_config

MODELS = ("deploy-alpha", "deploy-beta")


def test_two_configs_deploy_side_by_side_each_with_its_own_trigger(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ensure_work_pool()
    options = []
    for model in MODELS:
        raw = fast_config_dict(name=model, registered_model_name=model)
        options += ["--config", str(write_config(tmp_path / f"{model}.yaml", raw))]
    # One `prefect deploy` for both (each one imports every flow: ~20 s on a loaded CI machine).
    answer = CliRunner().invoke(app, ["deploy", *options])
    assert answer.exit_code == 0, answer.output[-3000:]
    for model in MODELS:
        assert f"trigger retrain-{model} on mlops.model.{model} events" in answer.output

    with get_client(sync_client=True) as client:
        automations = {a.name: a for a in client.read_automations()}
        for model in MODELS:
            config_path = str(tmp_path / f"{model}.yaml")
            train = client.read_deployment_by_name(f"training/train-{model}")
            monitor = client.read_deployment_by_name(f"monitoring/monitor-{model}")
            score = client.read_deployment_by_name(f"batch-scoring/score-{model}")
            for deployment in (train, monitor, score):
                assert deployment.parameters["params"]["config_path"] == config_path
                assert model in deployment.tags
            assert score.parameters["params"]["destination"]["path"].endswith(f"{model}.parquet")
            assert monitor.schedules and score.schedules

            trigger = automations[f"retrain-{model}"]
            assert trigger.trigger.match.model_dump() == {
                "prefect.resource.id": f"mlops.model.{model}"
            }
            (action,) = trigger.actions
            assert action.deployment_id == train.id
            assert action.parameters["params"]["config_path"] == config_path
            assert action.parameters["params"]["window"] == "recent"

    # `mlops simulate` on this server would retrain a deployed model through its own trigger.
    monkeypatch.setenv("PREFECT_API_URL", str(PREFECT_API_URL.value()))
    assert retrain_triggers(MODELS[0]) == [f"retrain-{MODELS[0]}"]
    assert retrain_triggers("not-deployed") == []
