"""Prefect's temporary server never outlives the `mlops` process that started it.

With no PREFECT_API_URL, Prefect 3.8 starts a temporary API server (`SubprocessASGIServer`: a
uvicorn child on 127.0.0.1, SQLite under PREFECT_HOME) and stops it from an atexit handler. A
process killed with SIGKILL, by the OOM killer, or with SIGTERM (Prefect's handler crashes the
flow run, then lets the signal end the process) runs no atexit handler, and the server ran on
for good, holding its port and the database.
Prefect gives no hook into how it starts that child (no `preexec_fn`, so no PR_SET_PDEATHSIG;
its only settings are whether to allow it and how long to wait for it), so:

- `guard_temporary_servers` (the `mlops` entry point) marks this process in the environment the
  server inherits and starts a watchdog: a stdlib-only process that reads a pipe only this
  process holds open. However this process ends, the kernel closes the pipe; the watchdog then
  stops the temporary servers carrying this process's mark and whose starter is gone.
- `stop_orphaned_servers` (every `mlops` command, `mlops cleanup` included) stops the temporary
  servers of this PREFECT_HOME whose starter is gone: a watchdog killed too, or a server left by
  a Python process that had no watchdog (an `mlops` from before this, a script).

A server's starter is gone when the server has been handed to another parent: the init process,
or a subreaper, which is older than the marked `mlops` process (its starter is that process or
one of its descendants, never older). Unmarked servers are judged gone only under init (and
not when init is the Python program that started them, as in a container).
Linux only (it reads /proc); elsewhere both do nothing. Measured on a loaded 2-core machine: the
watchdog costs 12 MB and 0.1 s of start-up per command, the scan of /proc 3 ms, and a killed
`mlops train`'s server was gone 2.2 s after the kill.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

OWNER_VARIABLE = "MLOPS_TEMPORARY_SERVER_OWNER"
SERVER_APP = "prefect.server.api.server:create_app"
PROC = Path("/proc")
# Seen: a temporary server exits 2 s after SIGTERM on a loaded 2-core machine.
STOP_GRACE_SECONDS = 10.0
# The watchdog sees the pipe close before the kernel hands the dead process's children to
# their new parent; it waits (bounded) for the process to be gone before judging them.
OWNER_EXIT_SECONDS = 10.0


@dataclass(frozen=True)
class _Stat:
    state: str
    parent: int
    start: int  # clock ticks after boot: with the pid, names one process for good


@dataclass(frozen=True)
class TemporaryServer:
    """One running Prefect temporary server, as /proc shows it."""

    pid: int
    start: int
    port: int | None
    home: Path
    owner: str | None  # "<pid>:<start>" of the mlops process that marked it
    parent: int

    def describe(self) -> str:
        """Its pid, address, PREFECT_HOME and whose it was."""
        where = f"127.0.0.1:{self.port}" if self.port is not None else "an unknown port"
        whose = f"mlops process {self.owner.partition(':')[0]}" if self.owner else "its starter"
        return f"pid {self.pid} on {where} (PREFECT_HOME {self.home}; {whose} is gone)"


def _read(pid: int, name: str) -> bytes | None:
    try:
        return (PROC / str(pid) / name).read_bytes()
    except OSError:  # gone, or another user's
        return None


def _stat(pid: int) -> _Stat | None:
    raw = _read(pid, "stat")
    if raw is None:
        return None
    fields = raw.rpartition(b")")[2].split()  # after the command name, which may hold spaces
    return _Stat(state=fields[0].decode(), parent=int(fields[1]), start=int(fields[19]))


def _environ(pid: int) -> dict[str, str]:
    pairs = (_read(pid, "environ") or b"").split(b"\0")
    found: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition(b"=")
        if sep:
            found[key.decode(errors="replace")] = value.decode(errors="replace")
    return found


def _exe(pid: int) -> str | None:
    try:
        return os.readlink(PROC / str(pid) / "exe")
    except OSError:
        return None


def process_mark(pid: int) -> str | None:
    """`<pid>:<start>` of a running process (a recycled pid gets another mark), or None."""
    stat = _stat(pid)
    return None if stat is None else f"{pid}:{stat.start}"


def _running(pid: int, start: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat.start == start and stat.state not in ("Z", "X")


def _parse_mark(mark: str) -> tuple[int, int] | None:
    pid, _, start = mark.partition(":")
    return (int(pid), int(start)) if pid.isdigit() and start.isdigit() else None


def prefect_home(environ: Mapping[str, str], cwd: str) -> Path:
    """The PREFECT_HOME a process with this environment and working directory uses."""
    home = environ.get("PREFECT_HOME") or "~/.prefect"
    if home.startswith("~"):
        home = environ.get("HOME", "") + home[1:]
    return Path(os.path.normpath(os.path.join(cwd, home)))


def _port(argv: list[bytes]) -> int | None:
    for flag, value in pairwise(argv):
        if flag == b"--port" and value.isdigit():
            return int(value)
    return None


def temporary_servers() -> list[TemporaryServer]:
    """Every Prefect temporary server of this user running on this machine."""
    if not PROC.is_dir():
        return []
    found: list[TemporaryServer] = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        argv = (_read(pid, "cmdline") or b"").split(b"\0")
        if SERVER_APP.encode() not in argv:
            continue
        environ = _environ(pid)
        stat = _stat(pid)
        # `prefect server start` serves the same app; only Prefect's temporary one is ephemeral.
        if environ.get("PREFECT__SERVER_EPHEMERAL") != "1" or stat is None:
            continue
        try:
            cwd = os.readlink(PROC / entry.name / "cwd")
        except OSError:
            continue
        found.append(
            TemporaryServer(
                pid=pid,
                start=stat.start,
                port=_port(argv),
                home=prefect_home(environ, cwd),
                owner=environ.get(OWNER_VARIABLE),
                parent=stat.parent,
            )
        )
    return found


def starter_gone(server: TemporaryServer) -> bool:
    """True when the process that started the server has died (the server was reparented)."""
    if server.owner is None or (owner := _parse_mark(server.owner)) is None:
        # Only init adopts it, unless init is the Python program that started it (a container).
        return server.parent == 1 and _exe(1) != _exe(server.pid)
    parent = _stat(server.parent)
    return parent is None or parent.start < owner[1]


def stop_servers(servers: Iterable[TemporaryServer], grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM each server (uvicorn shuts down cleanly), SIGKILL what is left after `grace`."""
    left = [server for server in servers if _running(server.pid, server.start)]
    for server in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(server.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = [server for server in left if _running(server.pid, server.start)]
    for server in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(server.pid, signal.SIGKILL)


def stop_orphaned_servers(home: Path | None = None) -> list[str]:
    """Stop the temporary servers of this PREFECT_HOME whose starter is gone; one line each."""
    home = prefect_home(os.environ, os.getcwd()) if home is None else home
    orphans = [s for s in temporary_servers() if s.home == home and starter_gone(s)]
    stop_servers(orphans)
    return [f"stopped an orphaned temporary Prefect server: {s.describe()}" for s in orphans]


def guard_temporary_servers() -> int | None:
    """Have a watchdog stop the temporary server this process may start once it dies.

    Marks this process in its environment (the server inherits it) and starts the watchdog on
    a pipe whose writing end only this process holds (pipes are not inherited by the programs
    it runs). Once per process; nothing when a Prefect API is set or off Linux. The watchdog's
    pid, or None.
    """
    mark = process_mark(os.getpid())
    if mark is None or os.environ.get("PREFECT_API_URL") or os.environ.get(OWNER_VARIABLE) == mark:
        return None
    os.environ[OWNER_VARIABLE] = mark
    # The writing end stays open, unused, until the kernel closes it as this process ends.
    reading, _writing = os.pipe()
    # No Popen object: it would warn when collected with its child still running, which is
    # the point here. `-P`: a module in the working directory never shadows one the watchdog uses.
    watchdog = os.posix_spawn(
        sys.executable,
        [sys.executable, "-P", "-m", __name__, mark],
        os.environ,
        file_actions=[(os.POSIX_SPAWN_DUP2, reading, 0)],
    )
    os.close(reading)
    return watchdog


def _watch(owner: str) -> None:
    """The watchdog: wait for the owner to end, then stop its temporary servers."""
    # Ctrl-C and a closed terminal reach the whole process group: the owner handles them, and
    # its server may still need stopping after it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    while os.read(0, 512):
        pass
    mark = _parse_mark(owner)
    deadline = time.monotonic() + OWNER_EXIT_SECONDS
    while mark is not None and _running(*mark) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [s for s in temporary_servers() if s.owner == owner and starter_gone(s)]
    stop_servers(left)
    for server in left:
        with contextlib.suppress(OSError):  # the terminal may be gone
            print(
                f"mlops: stopped its temporary Prefect server: {server.describe()}", file=sys.stderr
            )


if __name__ == "__main__":
    _watch(sys.argv[1])
