"""`mlops up` / `mlops down`: a local stack on loopback, started and stopped idempotently.

Prefect server, a process worker, an MLflow tracking server (SQLite backend, artifacts served) and
the prediction service, each a child process in its own session with its log under
`<stack_dir>/logs/` and its pid under `<stack_dir>/run/`. `down` stops only what `up` started
(the pid files), and `up` twice starts no twins.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from prefect_mlops.errors import MlopsError

WORK_POOL = "mlops-process"


class StackError(MlopsError):
    """A stack service could not be started or stopped."""


class StackSettings(BaseSettings):
    """Where the local stack listens and keeps its state (`MLOPS_STACK_*` variables)."""

    model_config = SettingsConfigDict(env_prefix="MLOPS_STACK_", extra="ignore")

    dir: Path = Path(".mlops")
    host: str = "127.0.0.1"
    prefect_port: int = Field(default=4200, ge=1, le=65535)
    mlflow_port: int = Field(default=5000, ge=1, le=65535)
    serve_port: int = Field(default=8080, ge=1, le=65535)
    model_name: str = "bikeshare-demand"
    start_timeout: float = Field(default=120.0, gt=0)

    @property
    def prefect_api_url(self) -> str:
        return f"http://{self.host}:{self.prefect_port}/api"

    @property
    def mlflow_url(self) -> str:
        return f"http://{self.host}:{self.mlflow_port}"

    @property
    def serve_url(self) -> str:
        return f"http://{self.host}:{self.serve_port}"


@dataclass(frozen=True)
class Service:
    """One process of the stack: how to start it and how to know it is up."""

    name: str
    command: list[str]
    port: int | None
    health_url: str | None
    env: dict[str, str] = field(default_factory=dict)


def _bin(name: str) -> str:
    """An executable of this environment (the venv's bin folder, not whatever is on PATH)."""
    return str(Path(sys.executable).parent / name)


def stack_env(stack: StackSettings) -> dict[str, str]:
    """The variables every stack process (and a user's shell) needs to use the stack."""
    return {
        "PREFECT_API_URL": stack.prefect_api_url,
        "MLFLOW_TRACKING_URI": stack.mlflow_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "MLFLOW_ENABLE_TELEMETRY": "false",
        "GX_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "true",
    }


def services(stack: StackSettings, project_dir: Path) -> list[Service]:
    """The stack, in start order (the worker needs the servers; the service needs MLflow)."""
    home = str((stack.dir / "prefect").resolve())
    shared = {**stack_env(stack), "MLOPS_PROJECT_DIR": str(project_dir)}
    return [
        Service(
            name="prefect-server",
            command=[
                _bin("prefect"),
                "server",
                "start",
                "--host",
                stack.host,
                "--port",
                str(stack.prefect_port),
            ],
            port=stack.prefect_port,
            health_url=f"{stack.prefect_api_url}/health",
            # Tasks waiting on a tag concurrency limit retry after 2 s, not the default 30 s.
            env={
                **shared,
                "PREFECT_HOME": home,
                "PREFECT_SERVER_TASKS_TAG_CONCURRENCY_SLOT_WAIT_SECONDS": "2",
            },
        ),
        Service(
            name="mlflow-server",
            command=[
                _bin("mlflow"),
                "server",
                "--host",
                stack.host,
                "--port",
                str(stack.mlflow_port),
                "--backend-store-uri",
                f"sqlite:///{(stack.dir / 'mlflow.db').resolve()}",
                "--artifacts-destination",
                str((stack.dir / "mlartifacts").resolve()),
                "--serve-artifacts",
                "--workers",
                "1",
            ],
            port=stack.mlflow_port,
            health_url=f"{stack.mlflow_url}/health",
            env=shared,
        ),
        Service(
            name="prefect-worker",
            command=[_bin("prefect"), "worker", "start", "--pool", WORK_POOL, "--type", "process"],
            port=None,
            health_url=None,
            env={**shared, "PREFECT_HOME": home},
        ),
        Service(
            name="prediction-service",
            command=[
                _bin("mlops"),
                "serve",
                "--model",
                stack.model_name,
                "--alias",
                "champion",
                "--host",
                stack.host,
                "--port",
                str(stack.serve_port),
            ],
            port=stack.serve_port,
            health_url=f"{stack.serve_url}/v2/health/live",
            env=shared,
        ),
    ]


def _pid_file(stack: StackSettings, service: Service) -> Path:
    return stack.dir / "run" / f"{service.name}.pid"


def _log_file(stack: StackSettings, service: Service) -> Path:
    return stack.dir / "logs" / f"{service.name}.log"


def _alive(pid: int) -> bool:
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False  # our own child, exited (reaped now)
    except ChildProcessError:
        pass  # started by an earlier `mlops up`: not ours to reap
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def running_pid(stack: StackSettings, service: Service) -> int | None:
    """The pid `up` recorded for a service, if that process is still alive."""
    path = _pid_file(stack, service)
    if not path.exists():
        return None
    pid = int(path.read_text().strip())
    if not _alive(pid):
        path.unlink()  # a stale pid file from a crashed or rebooted stack
        return None
    return pid


def port_in_use(host: str, port: int) -> bool:
    """True when something already listens on host:port."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status < 500
    except (urllib.error.URLError, OSError):
        return False


def start_service(stack: StackSettings, service: Service) -> str:
    """Start one service unless it is already running; wait until it answers."""
    pid = running_pid(stack, service)
    if pid is not None:
        return f"{service.name}: already running (pid {pid})"
    if service.port is not None and port_in_use(stack.host, service.port):
        raise StackError(
            f"port {service.port} needed by {service.name} is already in use on {stack.host}; "
            f"stop what holds it or set MLOPS_STACK_{service.name.split('-')[0].upper()}_PORT"
        )
    for folder in ("run", "logs"):
        (stack.dir / folder).mkdir(parents=True, exist_ok=True)
    log = _log_file(stack, service).open("ab")
    process = subprocess.Popen(
        service.command,
        env={**os.environ, **service.env},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: `down` stops it and its children
    )
    _pid_file(stack, service).write_text(str(process.pid))
    deadline = time.monotonic() + stack.start_timeout
    while service.health_url and not _healthy(service.health_url):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_service(stack, service)
            raise StackError(f"{service.name} did not start (see {_log_file(stack, service)})")
        time.sleep(0.5)
    return f"{service.name}: started (pid {process.pid}), log {_log_file(stack, service)}"


def stop_service(stack: StackSettings, service: Service, grace: float = 15.0) -> str:
    """Stop a service `up` started (its whole process group); others are left alone."""
    pid = running_pid(stack, service)
    if pid is None:
        return f"{service.name}: not running"
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)  # the group: children that outlived their parent too
    _pid_file(stack, service).unlink(missing_ok=True)
    return f"{service.name}: stopped"


def stack_up(stack: StackSettings, project_dir: Path) -> list[str]:
    """Start every service of the stack that is not running yet."""
    return [start_service(stack, service) for service in services(stack, project_dir)]


def stack_down(stack: StackSettings, project_dir: Path) -> list[str]:
    """Stop every service `up` started, in reverse order."""
    return [stop_service(stack, service) for service in reversed(services(stack, project_dir))]
