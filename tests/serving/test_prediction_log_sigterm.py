"""A real service stopped with SIGTERM while its log store is down loses no row."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from prefect_mlops.prediction_log import read_prediction_log
from tests.prefect_mlops.test_log_safety import immutable
from tests.serving.conftest import REGRESSOR, row
from tests.serving.test_server import _free_port

ROOT = Path(__file__).parents[2]


def _start(work: Path) -> tuple[subprocess.Popen, str]:
    """`python -m serving` on loopback, logging under `work/log`; ready within 90 s."""
    port = _free_port()
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
        "MLOPS_SERVE_LOG_DIR": str(work / "log"),
        "MLOPS_SERVE_LOG_FLUSH_SECONDS": "0.2",
        "MLOPS_SERVE_POLL_SECONDS": "0",
    }
    command = [sys.executable, "-m", "serving", "--model", REGRESSOR, "--port", str(port)]
    process = subprocess.Popen(command, env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    process.kill()
    raise AssertionError(f"the service on {url} did not become ready")


def _counter(url: str, name: str) -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith(f'mlops_serve_prediction_log_{name}_total{{table="predictions"}}'):
            return float(line.split()[-1])
    raise AssertionError(f"{name} is not exported")


@pytest.fixture
def work(_template_store: Path, tmp_path: Path) -> Iterator[Path]:
    shutil.copy(_template_store / "mlflow.db", tmp_path / "mlflow.db")
    (tmp_path / "log").mkdir()
    yield tmp_path


def test_sigterm_during_an_outage_then_restart_leaves_every_row_on_disk(work: Path) -> None:
    with immutable(work / "log"):  # the log store refuses every write
        process, url = _start(work)
        try:
            ids = [
                httpx.post(f"{url}/predict", json={"records": [row(hr=i % 24)]}).json()[
                    "request_id"
                ]
                for i in range(200)
            ]
            time.sleep(0.5)  # a flush or two fails, the rows stay pending
            assert _counter(url, "rows") == 0 and _counter(url, "lost_rows") == 0
            process.send_signal(signal.SIGTERM)
            # uvicorn re-raises the signal once its graceful shutdown (the lifespan) is done
            assert process.wait(60) in (0, -signal.SIGTERM)
        finally:
            if process.poll() is None:
                process.kill()
    assert list((work / "log").iterdir()) == []  # nothing reached the store
    assert list((work / "log_spool").rglob("part-*"))
    process, url = _start(work)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _counter(url, "rows") < 200:
            time.sleep(0.2)
        assert _counter(url, "rows") == 200 and _counter(url, "lost_rows") == 0
        assert _counter(url, "dead_lettered_rows") == 0
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
    logged = read_prediction_log(directory=work / "log")
    assert sorted(logged["request_id"]) == sorted(ids)
    assert list((work / "log_spool").rglob("part-*")) == []
