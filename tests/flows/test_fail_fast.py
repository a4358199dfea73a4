"""A training run against a tracking server that is down fails at once, naming the server."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.training import TrainingParams, training_flow
from prefect_mlops.errors import ServerUnavailableError
from prefect_mlops.settings import Settings
from tests.system.conftest import free_port


def test_training_against_a_stopped_tracking_server_fails_naming_it(
    settings: Settings, fast_config_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stopped = f"http://127.0.0.1:{free_port()}"  # nothing listens there once the probe closed
    monkeypatch.setenv("MLFLOW_TRACKING_URI", stopped)

    with pytest.raises(ServerUnavailableError) as raised:
        training_flow(TrainingParams(config_path=str(fast_config_path)))

    assert f"MLflow tracking server at {stopped} is unreachable" in str(raised.value)
