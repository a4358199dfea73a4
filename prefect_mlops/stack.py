"""`mlops up` / `down` / `status`: a supervised local stack on loopback.

Prefect server, a process worker, an MLflow tracking server (artifacts served) and the prediction
service. Profile `local` (the default): SQLite and local files. Profile `production`
(`MLOPS_STACK_PROFILE=production` or `mlops up --profile production`): the Prefect server, MLflow's
tracking store and the prediction log on PostgreSQL - an existing server given by
`MLOPS_STACK_DATABASE_URL`, else a local cluster of `prefect_mlops.postgres` that `up` starts and
`down` stops - and MLflow with two workers. Each service is started in its own session (so its own
process group, whose id is the launcher's pid) with its log under `<stack_dir>/logs/` and that id
under `<stack_dir>/run/`.
A service is *running* while its launcher lives, *orphaned* when the launcher died but processes
of its group still do (MLflow's and Prefect's servers fork workers), *dead* when its group is
empty. `up` starts what is stopped, restarts what died, stops and names orphans before starting
again, and reports each service's health; `down` stops whole groups, orphans included, and only
the groups `up` recorded; `up` twice starts no twins.
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
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL

from prefect_mlops.errors import MlopsError
from prefect_mlops.postgres import LocalPostgres, ensure_databases, server_url

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
    report_port: int = Field(default=8090, ge=1, le=65535)  # HTML reports (report_server)
    model_name: str = "bikeshare-demand"
    start_timeout: float = Field(default=120.0, gt=0)
    # production: Prefect, MLflow and the prediction log on PostgreSQL, MLflow with 2 workers.
    profile: Literal["local", "production"] = "local"
    # An existing PostgreSQL server (postgresql://user:password@host:port), env only; unset: a
    # local cluster under <dir>/postgres, on postgres_port (0: a free port chosen at creation).
    database_url: SecretStr | None = None
    postgres_port: int = Field(default=0, ge=0, le=65535)
    postgres_bin: Path | None = None  # initdb and pg_ctl; Debian's newest version when unset
    mlflow_workers: int = Field(default=2, ge=1)
    # Where MLflow's server keeps the artifacts it serves: <dir>/mlartifacts, or s3://... etc.
    artifacts_destination: str | None = None

    @property
    def prefect_api_url(self) -> str:
        return f"http://{self.host}:{self.prefect_port}/api"

    @property
    def mlflow_url(self) -> str:
        return f"http://{self.host}:{self.mlflow_port}"

    @property
    def serve_url(self) -> str:
        return f"http://{self.host}:{self.serve_port}"

    @property
    def reports_url(self) -> str:
        return f"http://{self.host}:{self.report_port}"


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


def local_postgres(stack: StackSettings) -> LocalPostgres | None:
    """The stack's own PostgreSQL cluster: production profile with no server given."""
    if stack.profile != "production" or stack.database_url is not None:
        return None
    return LocalPostgres(stack.dir, stack.postgres_bin, host=stack.host)


def _started_cluster(stack: StackSettings) -> LocalPostgres | None:
    """The local cluster `down` and `status` handle: the profile's, or one an earlier
    `up --profile production` left under the stack dir (so a plain `mlops down` stops it too)."""
    cluster = local_postgres(stack)
    if cluster is None and stack.database_url is None:
        found = LocalPostgres(stack.dir, stack.postgres_bin, host=stack.host)
        return found if found.exists() else None
    return cluster


def database_urls(stack: StackSettings) -> dict[str, URL]:
    """Prefect's, MLflow's and the prediction log's database URLs (production profile); empty
    for the local profile, or before the local cluster exists."""
    if stack.profile != "production":
        return {}
    cluster = local_postgres(stack)
    if cluster is None:
        assert stack.database_url is not None
        server = server_url(stack.database_url.get_secret_value())
    elif cluster.port() is None:
        return {}
    else:
        server = cluster.url()
    return {
        "prefect": server.set(drivername="postgresql+asyncpg", database="prefect"),
        "mlflow": server.set(drivername="postgresql", database="mlflow"),
        "predictions": server.set(drivername="postgresql", database="predictions"),
    }


def _url(url: URL) -> str:
    return url.render_as_string(hide_password=False)


def production_env(stack: StackSettings) -> dict[str, str]:
    """The prediction log's URL (the service writes it, monitoring reads it) and, for the local
    cluster, PGPASSFILE; the local profile adds nothing."""
    urls = database_urls(stack)
    if not urls:
        return {}
    cluster = local_postgres(stack)
    log_url = _url(urls["predictions"])
    return {
        **(cluster.env() if cluster else {}),
        "MLOPS_SERVE_LOG_URL": log_url,
    }


def stack_env(stack: StackSettings) -> dict[str, str]:
    """The variables every stack process (and a user's shell) needs to use the stack."""
    return {
        **production_env(stack),
        "PREFECT_API_URL": stack.prefect_api_url,
        "MLFLOW_TRACKING_URI": stack.mlflow_url,
        "MLOPS_REPORTS_URL": stack.reports_url,  # report links (prefect_mlops.report_links)
        "MLOPS_SERVICE_URL": stack.serve_url,  # training links the service (prefect_mlops.episode)
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "MLFLOW_ENABLE_TELEMETRY": "false",
        "GX_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "true",
        # Fail in seconds when a server is down: MLflow's REST calls (default 120 s x 7 retries
        # with backoff) and Prefect's client (default 60 s x 5 retries), unless already set.
        **{key: os.environ.get(key, value) for key, value in FAIL_FAST.items()},
    }


FAIL_FAST = {
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "PREFECT_API_REQUEST_TIMEOUT": "20",
    "PREFECT_CLIENT_MAX_RETRIES": "3",
}


def _mlflow_store(stack: StackSettings) -> list[str]:
    """MLflow's backend store, artifact store and workers for the profile."""
    artifacts = stack.artifacts_destination or str((stack.dir / "mlartifacts").resolve())
    urls = database_urls(stack)
    if stack.profile == "local":
        backend, workers = f"sqlite:///{(stack.dir / 'mlflow.db').resolve()}", ["--workers", "1"]
    else:
        backend = _url(urls["mlflow"]) if urls else "postgresql://"
        # Under load the default 30 s health check killed busy workers in a loop (STACK.md).
        workers = [
            "--workers",
            str(stack.mlflow_workers),
            "--uvicorn-opts",
            "--timeout-worker-healthcheck 120",
        ]
    return [
        "--backend-store-uri",
        backend,
        "--artifacts-destination",
        artifacts,
        "--serve-artifacts",
        *workers,
    ]


def _prefect_database(stack: StackSettings) -> dict[str, str]:
    urls = database_urls(stack)
    if not urls:
        return {}
    return {"PREFECT_SERVER_DATABASE_CONNECTION_URL": _url(urls["prefect"])}


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
                **_prefect_database(stack),
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
                *_mlflow_store(stack),
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
        Service(
            name="report-server",
            command=[
                sys.executable,
                "-m",
                "prefect_mlops.report_server",
                "--host",
                stack.host,
                "--port",
                str(stack.report_port),
            ],
            port=stack.report_port,
            health_url=f"{stack.reports_url}/health",
            env=shared,
        ),
    ]


def _pid_file(stack: StackSettings, service: Service) -> Path:
    return stack.dir / "run" / f"{service.name}.pid"


def _log_file(stack: StackSettings, service: Service) -> Path:
    return stack.dir / "logs" / f"{service.name}.log"


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, process group) of a process from /proc, or None when it does not exist."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # the command name may hold spaces
    return fields[0], int(fields[2])


def _alive(pid: int) -> bool:
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False  # our own child, exited (reaped now)
    except ChildProcessError:
        pass  # started by an earlier `mlops up`: not ours to reap
    stat = _proc_stat(pid)
    if stat is not None:
        return stat[0] != "Z"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def group_members(pgid: int) -> list[int]:
    """The live processes of a process group (zombies excluded)."""
    proc = Path("/proc")
    if not proc.is_dir():  # no procfs: all that can be told is whether the group is empty
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    members = []
    for entry in proc.iterdir():
        if entry.name.isdigit():
            stat = _proc_stat(int(entry.name))
            if stat is not None and stat[1] == pgid and stat[0] != "Z":
                members.append(int(entry.name))
    return sorted(members)


def recorded_pid(stack: StackSettings, service: Service) -> int | None:
    """The launcher pid (= process group id) `up` recorded for a service, alive or not."""
    path = _pid_file(stack, service)
    if not path.exists():
        return None
    return int(path.read_text().strip())


def running_pid(stack: StackSettings, service: Service) -> int | None:
    """The pid `up` recorded for a service, if that launcher is still alive."""
    pid = recorded_pid(stack, service)
    return pid if pid is not None and _alive(pid) else None


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


@dataclass(frozen=True)
class ServiceStatus:
    """What `mlops status` shows of one service."""

    name: str
    state: str  # running | orphaned | dead | stopped
    pid: int | None = None
    members: tuple[int, ...] = ()
    healthy: bool | None = None  # None: no health check (the worker), or not running
    health_url: str | None = None

    def line(self) -> str:
        """One human line: state, group and health."""
        group = f" (group {self.pid}: {len(self.members)} processes)" if self.members else ""
        if self.state == "running":
            health = {True: ", healthy", False: f", NOT answering {self.health_url}", None: ""}
            return f"{self.name}: running, pid {self.pid}{group}{health[self.healthy]}"
        if self.state == "orphaned":
            pids = ", ".join(map(str, self.members))
            return (
                f"{self.name}: ORPHANED, launcher {self.pid} died, its group still runs pids {pids}"
            )
        if self.state == "dead":
            return f"{self.name}: DEAD (pid {self.pid} and its group are gone)"
        return f"{self.name}: stopped"


def service_status(stack: StackSettings, service: Service) -> ServiceStatus:
    """Running, orphaned, dead or stopped, from the recorded group; health when running."""
    pid = recorded_pid(stack, service)
    if pid is None:
        return ServiceStatus(service.name, "stopped")
    leader = _alive(pid)
    members = tuple(group_members(pid))
    if leader:
        healthy = _healthy(service.health_url) if service.health_url else None
        return ServiceStatus(service.name, "running", pid, members, healthy, service.health_url)
    if members:
        return ServiceStatus(service.name, "orphaned", pid, members)
    return ServiceStatus(service.name, "dead", pid)


def start_service(stack: StackSettings, service: Service) -> str:
    """Start one service unless it runs; restart it when it died, orphans stopped first."""
    status = service_status(stack, service)
    if status.state == "running":
        return status.line().replace(": running,", ": already running,", 1)
    notes = ""
    if status.state == "orphaned":
        stop_service(stack, service)
        pids = ", ".join(map(str, status.members))
        notes = f" (found orphans of its dead launcher {status.pid}: pids {pids}, stopped)"
    elif status.state == "dead":
        _pid_file(stack, service).unlink(missing_ok=True)
        notes = f" (it had died: pid {status.pid})"
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
    verb = "restarted" if notes else "started"
    health = ", healthy" if service.health_url else ""
    return (
        f"{service.name}: {verb} (pid {process.pid}{health}){notes}, "
        f"log {_log_file(stack, service)}"
    )


def stop_service(stack: StackSettings, service: Service, grace: float = 15.0) -> str:
    """Stop a service `up` started: its whole process group, launcher alive or not."""
    pid = recorded_pid(stack, service)
    if pid is None or not group_members(pid):
        _pid_file(stack, service).unlink(missing_ok=True)
        return f"{service.name}: not running"
    count = len(group_members(pid))
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _alive(pid)  # reaps the launcher when it is our child
        if not group_members(pid):
            break
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)  # the group: children that outlived their parent too
    _alive(pid)
    _pid_file(stack, service).unlink(missing_ok=True)
    return f"{service.name}: stopped (group {pid}, {count} processes)"


def _selected(stack: StackSettings, project_dir: Path, names: list[str] | None) -> list[Service]:
    chosen = services(stack, project_dir)
    if names is None:
        return chosen
    unknown = sorted(set(names) - {s.name for s in chosen})
    if unknown:
        raise StackError(f"unknown service(s) {unknown}; the stack has {[s.name for s in chosen]}")
    return [s for s in chosen if s.name in names]


def prepare_databases(stack: StackSettings) -> list[str]:
    """Production profile: the local cluster started (created once), or the given server's
    databases made; nothing for the local profile."""
    if stack.profile != "production":
        return []
    cluster = local_postgres(stack)
    if cluster is not None:
        return cluster.start(stack.postgres_port)
    assert stack.database_url is not None
    return ensure_databases(server_url(stack.database_url.get_secret_value()))


def stack_up(stack: StackSettings, project_dir: Path, names: list[str] | None = None) -> list[str]:
    """Start (or restart) every service of the stack, or only `names`, that is not running."""
    lines = prepare_databases(stack)
    return lines + [start_service(stack, s) for s in _selected(stack, project_dir, names)]


def stack_down(
    stack: StackSettings, project_dir: Path, names: list[str] | None = None
) -> list[str]:
    """Stop every service `up` started (or only `names`), in reverse order; then the local
    PostgreSQL cluster when the whole stack stops (its data stays for the next `up`)."""
    chosen = reversed(_selected(stack, project_dir, names))
    lines = [stop_service(stack, service) for service in chosen]
    cluster = _started_cluster(stack)
    if cluster is not None and names is None:
        lines.append(cluster.stop())
    return lines


def postgres_status(stack: StackSettings) -> ServiceStatus | None:
    """The local PostgreSQL cluster's state (pg_ctl's), None when the stack has none."""
    cluster = _started_cluster(stack)
    if cluster is None:
        return None
    if not cluster.running():
        return ServiceStatus("postgres", "stopped")
    pid = int((cluster.data_dir / "postmaster.pid").read_text().split()[0])
    return ServiceStatus("postgres", "running", pid, tuple(group_members(pid)))


def stack_status(stack: StackSettings, project_dir: Path) -> list[ServiceStatus]:
    """Each service's state, process group and health (the local PostgreSQL first)."""
    database = postgres_status(stack)
    statuses = [service_status(stack, service) for service in services(stack, project_dir)]
    return ([database] if database else []) + statuses
