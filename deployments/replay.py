"""Traffic for a served model: the real prediction service on loopback, replayed rows, labels.

Used by `mlops simulate` and the system tests to drive the service the way clients do.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pandas as pd

from prefect_mlops.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BATCH_ROWS = 200
SERVICE_START_SECONDS = 120.0
LOG_WAIT_SECONDS = 60.0


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def prediction_service(
    model: str, settings: Settings, log_dir: Path, say: Callable[[str], None]
) -> Iterator[str]:
    """The real prediction service (`python -m serving`) on loopback; yields its base URL."""
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": settings.tracking_uri,
        "MLOPS_SERVE_LOG_DIR": str(log_dir),
        "MLOPS_SERVE_LOG_FLUSH_SECONDS": "0.5",
    }
    command = [sys.executable, "-m", "serving", "--model", model, "--port", str(port)]
    command += ["--poll-seconds", "0", "--no-onnx"]
    log_file = (log_dir.parent / "service.log").open("ab")
    process = subprocess.Popen(
        command, cwd=PROJECT_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url, process)
        say(f"serving {model}@champion at {url} (pid {process.pid}, log {log_file.name})")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log_file.close()


def wait_until_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    """Poll readiness until the service has loaded its model (or has died)."""
    deadline = time.monotonic() + SERVICE_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"prediction service exited with code {process.returncode}")
        try:
            if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"prediction service at {url} not ready in {SERVICE_START_SECONDS:.0f} s")


def replay(url: str, rows: pd.DataFrame, features: list[str], target: str) -> int:
    """Send rows in batches to /predict, then feed each row's label back on /feedback."""
    sent = 0
    with httpx.Client(base_url=url, timeout=30) as client:
        for start in range(0, len(rows), BATCH_ROWS):
            batch = rows.iloc[start : start + BATCH_ROWS]
            records = batch[features].to_dict(orient="records")
            answer = client.post("/predict", json={"records": records})
            answer.raise_for_status()
            request_id = answer.json()["request_id"]
            for index, label in enumerate(batch[target].tolist()):
                feedback = {"request_id": request_id, "row_index": index, "label": label}
                client.post("/feedback", json=feedback).raise_for_status()
            sent += len(batch)
    return sent


def wait_for_log(log_dir: Path, rows: int) -> None:
    """Wait until the service's background writer has flushed `rows` predictions and labels."""
    from prefect_mlops.prediction_log import read_prediction_log

    deadline = time.monotonic() + LOG_WAIT_SECONDS
    while time.monotonic() < deadline:
        log = read_prediction_log(directory=log_dir)
        if len(log) >= rows and log["label"].notna().sum() >= rows:
            return
        time.sleep(0.5)
    raise RuntimeError(f"prediction log {log_dir} did not reach {rows} labelled rows")


def served_version(url: str) -> str:
    """Ask the service to follow its alias now and return the version it serves."""
    with httpx.Client(base_url=url, timeout=60) as client:
        client.post("/reload").raise_for_status()
        return str(client.get("/metadata").json()["version"])
