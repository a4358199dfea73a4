"""System: an A/B split is the same in two service processes and after a restart (the arm is
a SHA-256 function of the key, never Python's salted hash), read from the registry at start-up."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from mlflow.pyfunc.scoring_server.client import ScoringServerClient

from prefect_mlops.rollout import RolloutState, write_rollout
from tests.serving.conftest import REGRESSOR, Store, register, row

pytestmark = pytest.mark.system
KEYS = [f"customer-{i}" for i in range(40)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def _services(store: Store, *log_dirs: Path) -> Iterator[list[str]]:
    """`python -m serving` per log folder, each on a free loopback port, started side by side
    and killed afterwards."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": store.uri}
    started: list[tuple[int, subprocess.Popen]] = []
    try:
        for log_dir in log_dirs:
            port = _free_port()
            command = [sys.executable, "-m", "serving", "--model", REGRESSOR, "--port", str(port)]
            process = subprocess.Popen(
                [*command, "--poll-seconds", "0"],
                env={**env, "MLOPS_SERVE_LOG_DIR": str(log_dir)},
            )
            started.append((port, process))
        for port, process in started:
            ScoringServerClient("127.0.0.1", port).wait_server_ready(
                timeout=180, scoring_server_proc=process
            )
        yield [f"http://127.0.0.1:{port}" for port, _ in started]
    finally:
        for _, process in started:
            process.terminate()
        for _, process in started:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(30)


def _arms(url: str) -> dict[str, tuple[str, str]]:
    answers = {}
    with httpx.Client(base_url=url, timeout=30) as client:
        for key in KEYS:
            response = client.post(
                "/predict", json={"records": [row()]}, headers={"x-rollout-key": key}
            )
            assert response.status_code == 200
            answers[key] = (response.headers["x-model-arm"], response.headers["x-model-version"])
    return answers


def test_ab_assignment_is_identical_across_two_processes_and_a_restart(
    store: Store, tmp_path: Path
) -> None:
    challenger = register(store, REGRESSOR, shift=1000.0, alias=None)
    state = RolloutState(version=challenger, mode="ab", share=0.5, key="customer_id")
    write_rollout(store.client, REGRESSOR, state)
    expected = {
        key: ("challenger", challenger)
        if state.serving_arm(key, "") == "challenger"
        else ("champion", "1")
        for key in KEYS
    }
    assert {arm for arm, _ in expected.values()} == {"champion", "challenger"}
    with _services(store, tmp_path / "a", tmp_path / "b") as (first, second):
        assert _arms(first) == expected
        assert _arms(second) == expected
        metadata = httpx.get(f"{second}/metadata").json()["rollout"]
        assert (metadata["mode"], metadata["challenger_version"]) == ("ab", challenger)
    with _services(store, tmp_path / "a") as (restarted,):
        assert _arms(restarted) == expected
