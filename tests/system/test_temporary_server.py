"""kill -9 (and SIGTERM) of a real `mlops train` on Prefect's temporary server: it goes too.

With no PREFECT_API_URL the command starts Prefect's temporary API server (a uvicorn child on
127.0.0.1 with SQLite under PREFECT_HOME). The tests give the command a PREFECT_HOME of their
own, wait until that server answers, signal the command and expect the server's process and its
listening port gone within a bound, the watchdog too. SIGKILL runs no atexit handler, so the
watchdog must have stopped the server (and said so); SIGTERM ended the process without them too
before the watchdog (seen when it landed before and during the flow run). No stack is needed:
the point is the server Prefect starts when there is none.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

import pytest

from prefect_mlops.settings import Settings
from tests.conftest import BIKESHARE_CONFIG
from tests.prefect_mlops.test_temporary_server import (
    alive,
    answering_server,
    children,
    listening,
    wait_for,
)
from tests.system.conftest import BIN, ROOT

pytestmark = pytest.mark.system
WATCHDOG = "prefect_mlops.temporary_server"
START_SECONDS = 240  # importing the training flow and a new SQLite database on a loaded machine
GONE_SECONDS = 30  # the watchdog sends SIGTERM, and SIGKILL after 10 s


@pytest.fixture(scope="module")
def prefect_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One PREFECT_HOME for both cases: the second opens the database the first created."""
    return tmp_path_factory.mktemp("prefect-home")


@pytest.mark.parametrize("signal_number", [signal.SIGKILL, signal.SIGTERM], ids=["kill", "term"])
def test_ending_mlops_train_stops_its_temporary_prefect_server(
    signal_number: signal.Signals, prefect_home: Path, tmp_path: Path, settings: Settings
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(PREFECT_HOME=str(prefect_home), COLUMNS="300")
    log_path = tmp_path / "mlops.log"
    with log_path.open("w") as log:
        mlops = subprocess.Popen(
            [str(BIN / "mlops"), "train", "--config", str(BIKESHARE_CONFIG)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: the finally below stops all it started
        )
    try:
        pid, port = answering_server(mlops, START_SECONDS)
        watchdogs = [p for p, argv in children(mlops.pid).items() if WATCHDOG in argv]
        assert len(watchdogs) == 1, f"not one watchdog beside the server: {watchdogs}"

        mlops.send_signal(signal_number)
        mlops.wait(timeout=60)
        assert wait_for(lambda: not alive(pid) and not listening(port), GONE_SECONDS), (
            f"temporary server pid {pid} (port {port}) still there {GONE_SECONDS} s after "
            f"{signal_number.name} of mlops"
        )
        assert wait_for(lambda: not alive(watchdogs[0]), 10), "the watchdog outlived its work"
        line = f"stopped its temporary Prefect server: pid {pid} on 127.0.0.1:{port}"
        if signal_number == signal.SIGKILL:  # nothing else could have stopped it
            assert line in log_path.read_text()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(mlops.pid, signal.SIGKILL)  # the server and the watchdog are in its group
        mlops.wait(timeout=30)
