"""System: the real service process on loopback, driven by MLflow's own scoring client."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from mlflow.pyfunc.scoring_server import CONTENT_TYPE_CSV
from mlflow.pyfunc.scoring_server.client import ScoringServerClient

from prefect_mlops.packaging import load_pipeline
from prefect_mlops.prediction_log import read_prediction_log
from tests.serving.conftest import REGRESSOR, row, synthetic_frame

pytestmark = pytest.mark.system


@dataclass(frozen=True)
class Server:
    url: str
    port: int
    process: subprocess.Popen
    log_dir: Path
    tracking_uri: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(_template_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`python -m serving` on a free loopback port (killed at the end unless a test stopped it)."""
    work = tmp_path_factory.mktemp("server")
    shutil.copy(_template_store / "mlflow.db", work / "mlflow.db")
    port = _free_port()
    uri = f"sqlite:///{work / 'mlflow.db'}"
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "MLOPS_SERVE_LOG_DIR": str(work / "log"),
    }
    command = [sys.executable, "-m", "serving", "--model", REGRESSOR, "--port", str(port)]
    process = subprocess.Popen(command, env=env, cwd=Path(__file__).parents[2])
    try:
        client = ScoringServerClient("127.0.0.1", port)
        client.wait_server_ready(timeout=90, scoring_server_proc=process)
        yield Server(f"http://127.0.0.1:{port}", port, process, work / "log", uri)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)


def test_real_server_answers_predict_over_loopback(server: Server) -> None:
    response = httpx.post(f"{server.url}/predict", json={"records": [row()]})
    assert response.status_code == 200
    assert response.json()["model_version"] == "1"


def test_mlflow_scoring_client_gets_the_in_process_predictions(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.tracking_uri)
    frame = synthetic_frame().drop(columns=["demand", "churned"]).head(25)
    served = ScoringServerClient("127.0.0.1", server.port).invoke(frame).get_predictions()
    model = load_pipeline(f"models:/{REGRESSOR}@champion")
    np.testing.assert_allclose(np.asarray(served).ravel(), model.predict(frame), rtol=1e-9)


def test_csv_body_over_loopback_gets_the_in_process_predictions(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.tracking_uri)
    frame = synthetic_frame().drop(columns=["demand", "churned"]).head(40)  # with NaN gaps
    response = httpx.post(
        f"{server.url}/invocations",
        content=frame.to_csv(index=False),
        headers={"content-type": CONTENT_TYPE_CSV},
    )
    assert response.status_code == 200, response.text
    model = load_pipeline(f"models:/{REGRESSOR}@champion")
    np.testing.assert_allclose(response.json()["predictions"], model.predict(frame), rtol=1e-9)


def test_liveness_answers_without_a_token(server: Server) -> None:
    assert httpx.get(f"{server.url}/health/live").json() == {"live": True}


def test_sigterm_stops_the_server_and_flushes_the_prediction_log(server: Server) -> None:
    httpx.post(f"{server.url}/predict", json={"records": [row(temp=3.25)]})
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(30)
    log = read_prediction_log(directory=server.log_dir)
    assert 3.25 in set(log["temp"])
