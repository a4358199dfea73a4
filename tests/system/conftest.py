"""A real local stack on loopback (`mlops up` in Python), shared by the system tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from prefect_mlops.stack import StackSettings, stack_down, stack_env, stack_up

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Stack:
    """A started stack and the environment a user's shell would have after `mlops up`."""

    def __init__(self, settings: StackSettings, env: dict[str, str], root: Path) -> None:
        self.settings = settings
        self.env = env
        self.root = root

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """Run a command of this environment (prefect, mlops, ...) as a user would."""
        return subprocess.run(
            [str(BIN / args[0]), *args[1:]],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


LOOP_MODEL = "loop-demand"


def wait_for(predicate, seconds: float, what: str):
    """`predicate()`'s first truthy value, polled every 2 s for at most `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(2)
    raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")


def flow_runs(stack: Stack, flow: str) -> list[dict]:
    """The last 20 runs of `flow` on the stack's server (not the test harness), newest first."""
    body = {
        "flows": {"name": {"any_": [flow]}},
        "sort": "EXPECTED_START_TIME_DESC",
        "limit": 20,
        "offset": 0,
    }
    found = httpx.post(f"{stack.settings.prefect_api_url}/flow_runs/filter", json=body, timeout=10)
    found.raise_for_status()
    return found.json()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("stack")
    gx_root = root / "great_expectations"
    shutil.copytree(
        ROOT / "great_expectations", gx_root, ignore=shutil.ignore_patterns("uncommitted")
    )
    settings = StackSettings(
        dir=root / ".mlops",
        prefect_port=free_port(),
        mlflow_port=free_port(),
        serve_port=free_port(),
        report_port=free_port(),
        model_name=LOOP_MODEL,  # the service follows the model the closed-loop test trains
    )
    # Inherited by every stack process (the worker runs the flows): keep their files in tmp.
    overrides = {
        "MLOPS_ARTIFACT_ROOT": str(root / "artifacts"),
        "MLOPS_GX_ROOT": str(gx_root),
        "MLOPS_SERVE_POLL_SECONDS": "2",
        "MLOPS_SERVE_LOG_DIR": str(root / "artifacts" / "prediction_log"),
    }
    saved = {key: os.environ.get(key) for key in overrides}
    os.environ.update(overrides)
    try:
        stack_up(settings, ROOT)
        env = {**os.environ, **stack_env(settings), "COLUMNS": "300"}
        yield Stack(settings, env, root)
    finally:
        stack_down(settings, ROOT)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def deployed(stack: Stack) -> Stack:
    """The work pool, automations and every deployment of prefect.yaml, created as in the README."""
    setup = stack.run("python", "-m", "deployments.setup")
    assert setup.returncode == 0, setup.stdout + setup.stderr
    deploy = stack.run("mlops", "deploy")
    assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-3000:]
    return stack
