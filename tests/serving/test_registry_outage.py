"""System: a real `mlflow server` on loopback stops; the service keeps serving its loaded model
and says the registry is unreachable, apart from its readiness."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from tests.serving.conftest import REGRESSOR, Store, make_settings, row

pytestmark = pytest.mark.system
SECRET = "s3cret-pw"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def tracking_server(store: Store, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """`mlflow server` over a copy of the store, in a process group of its own."""
    shutil.copy(Path(store.uri.removeprefix("sqlite:///")), tmp_path / "server.db")
    port = _free_port()
    mlflow = str(Path(sys.executable).parent / "mlflow")
    command = [mlflow, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    command += ["--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}"]
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "MLFLOW_ENABLE_TELEMETRY": "false"},
    )
    try:
        deadline = time.monotonic() + 90
        while httpx_status(f"http://127.0.0.1:{port}/health") != 200:
            assert process.poll() is None and time.monotonic() < deadline, "mlflow server"
            time.sleep(0.3)
        yield f"http://127.0.0.1:{port}", process
    finally:
        stop(process)


def httpx_status(url: str) -> int:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return 0


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)


def test_registry_outage_is_reported_while_the_loaded_model_keeps_serving(
    caplog: pytest.LogCaptureFixture,
    store: Store,
    tmp_path: Path,
    tracking_server: tuple[str, subprocess.Popen],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, process = tracking_server
    # the service reads MLFLOW_TRACKING_URI before its own setting
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url.replace("http://", f"http://mlops:{SECRET}@"))
    settings = make_settings(store, tmp_path, poll_seconds=0.3)
    assert settings.tracking_uri.startswith("http://mlops:")
    with TestClient(create_app(settings)) as client:
        before = client.get("/health").json()
        assert before["ready"] is True and before["registry"]["reachable"] is True
        stop(process)
        deadline = time.monotonic() + 60
        while (health := client.get("/health")).json()["registry"]["reachable"]:
            assert time.monotonic() < deadline, "the outage was not noticed within 60 s"
            time.sleep(0.2)
        ready = client.get("/v2/health/ready")
        served = client.post("/predict", json={"records": [row()]})
        metrics = client.get("/metrics").text
    body = health.json()
    assert health.status_code == 200 and body["ready"] is True and body["reason"] is None
    assert body["registry"]["uri"] == url  # named, without its credentials
    assert body["registry"]["error"] and SECRET not in health.text
    assert ready.status_code == 200 and ready.json()["registry"]["reachable"] is False
    assert served.status_code == 200 and served.json()["model_name"] == REGRESSOR
    assert "mlops_serve_registry_reachable 0.0" in metrics
    assert "Connection refused" in body["registry"]["error"]
    assert f"registry {url} is unreachable" in caplog.text and SECRET not in caplog.text
