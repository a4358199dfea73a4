"""The next `mlops` command stops the temporary Prefect server that a killed process left.

A Python process starts Prefect's temporary server the way any flow call does
(`SubprocessASGIServer`) with a PREFECT_HOME of its own and no `mlops` watchdog (a script, or an
`mlops` from before it had one). `mlops status` (any command would do) runs while that process
lives, and must leave its server alone; then the process is killed with SIGKILL, orphaning the
server, and the next `mlops status` must stop it and name it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

SERVER_APP = "prefect.server.api.server:create_app"
START_SECONDS = 180  # a new SQLite database on a loaded 2-core machine
STARTER = """
import time
from prefect.server.api.server import SubprocessASGIServer

SubprocessASGIServer().start()
time.sleep(600)
"""


def children(pid: int) -> dict[int, list[str]]:
    """The live child processes of `pid` and their command lines, from /proc."""
    found: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rpartition(")")[2].split()
            argv = (entry / "cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        if int(stat[1]) == pid and stat[0] != "Z":
            found[int(entry.name)] = argv
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def answering(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def answering_server(starter: subprocess.Popen[bytes], seconds: float) -> tuple[int, int]:
    """(pid, port) of the temporary server `starter` started, once it answers."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and starter.poll() is None:
        for pid, argv in children(starter.pid).items():
            if SERVER_APP in argv and answering(port := int(argv[argv.index("--port") + 1])):
                return pid, port
        time.sleep(0.5)
    raise AssertionError(f"no temporary server answered within {seconds} s")


@dataclass
class Sweeps:
    server: tuple[int, int]
    beside_live_starter: subprocess.CompletedProcess[str]
    answered_after_it: bool
    after_kill: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sweeps]:
    """`mlops status` beside a temporary server whose starter lives, then after its kill -9."""
    workdir = tmp_path_factory.mktemp("temporary-server")
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.pop("MLOPS_TEMPORARY_SERVER_OWNER", None)  # no mark: no watchdog will clean up
    env.update(PREFECT_HOME=str(workdir / "prefect-home"), MLOPS_STACK_DIR=str(workdir / "stack"))
    mlops = [str(Path(sys.executable).parent / "mlops"), "status"]
    starter = subprocess.Popen(
        [sys.executable, "-c", STARTER], env=env, start_new_session=True
    )  # its own group, which the server joins: the finally below stops both
    try:
        server = answering_server(starter, START_SECONDS)
        first = subprocess.run(mlops, env=env, capture_output=True, text=True, timeout=120)
        answered = answering(server[1])
        starter.kill()
        starter.wait(timeout=30)
        assert alive(server[0]), "the server died with its starter: nothing to test"
        second = subprocess.run(mlops, env=env, capture_output=True, text=True, timeout=120)
        yield Sweeps(server, first, answered, second)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(starter.pid, signal.SIGKILL)
        starter.wait(timeout=30)


def test_an_mlops_command_leaves_a_live_process_temporary_server_alone(sweeps: Sweeps) -> None:
    assert sweeps.beside_live_starter.returncode == 0, sweeps.beside_live_starter.stderr
    assert "stopped" not in sweeps.beside_live_starter.stderr
    assert sweeps.answered_after_it


def test_the_next_mlops_command_stops_an_orphaned_temporary_server_and_names_it(
    sweeps: Sweeps,
) -> None:
    pid, port = sweeps.server
    assert sweeps.after_kill.returncode == 0, sweeps.after_kill.stderr
    line = f"stopped an orphaned temporary Prefect server: pid {pid} on 127.0.0.1:{port}"
    assert line in sweeps.after_kill.stderr
    assert wait_for(lambda: not alive(pid) and not listening(port), 5), f"pid {pid} still there"
