"""Two hosts that share only the artifact root URI (issue 15), on loopback.

PostgreSQL from Debian (the project's cluster), Prefect's server and MLflow's server on it, MLflow
serving model artifacts over HTTP, and moto's S3 server as the artifact root. Two workers, each
with its own copy of the project, its own working directory and local artifact root, run in
mount namespaces of their own (`unshare -m`) where the other host's folder is an empty tmpfs, and
where MLflow's artifact folder is hidden too: what one host wrote reaches the other only through
the S3 root, MLflow and the databases. Host A takes training, host B monitoring; the prediction
service runs from a third folder that sees neither. Train on A, serve, replay drifted traffic into
the SQL prediction log, monitor on B; the `retrain-on-drift` trigger's run completes on whichever
worker takes it and the service answers with the new champion.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from deployments.replay import replay
from prefect_mlops.postgres import LocalPostgres, PostgresError, find_bin_dir
from prefect_mlops.prediction_log import read_prediction_log
from prefect_mlops.stack import (
    StackSettings,
    prepare_databases,
    services,
    stack_down,
    stack_env,
    start_service,
)
from tests.conftest import BIKESHARE_CONFIG, BIKESHARE_CSV
from tests.s3 import S3Server, moto_s3
from tests.system.conftest import BIN, ROOT, Stack, flow_runs, free_port, wait_for

pytestmark = pytest.mark.system
MODEL = "two-hosts-demand"
# Relative to each host's checkout: the deployments' runs (and the trigger's) name the same
# config and landing file, which each host reads from its own copy.
CONFIG = "configs/two-hosts.yaml"
LANDING = "data/landing.csv"
# What a host's checkout holds besides its expectation suites: the code and its configs.
CHECKOUT = ("configs", "deployments", "flows", "prefect_mlops", "serving", "tasks")
FEATURES_DROPPED = ("bikers", "casual", "registered", "timestamp")
QUEUES = {"train": "training", "monitor-bikeshare": "monitoring"}
SERVERS = ("prefect-server", "mlflow-server")  # the stack's; the hosts bring the rest


def months(frame: pd.DataFrame, first: int, last: int) -> pd.DataFrame:
    month = pd.to_datetime(frame["timestamp"]).dt.month
    return frame[(month >= first) & (month <= last)]


def isolated(command: list[str], hidden: list[Path]) -> list[str]:
    """`command` in a mount namespace of its own where each `hidden` folder is an empty tmpfs."""
    mounts = " && ".join(f"mount -t tmpfs tmpfs {shlex.quote(str(p))}" for p in hidden)
    script = f"{mounts} && exec {shlex.join(command)}"
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]


@dataclass(frozen=True)
class Host:
    """One worker's machine: its checkout (also its working directory) and what it keeps."""

    name: str
    dir: Path

    def env(self, base: dict[str, str], s3: S3Server, root_uri: str) -> dict[str, str]:
        return {
            **base,
            **s3.environment(root_uri),
            "MLOPS_PROJECT_DIR": str(self.dir),  # the deployments' pull step goes there
            "MLOPS_LOCAL_ARTIFACT_ROOT": str(self.dir / "artifacts"),
            "MLOPS_GX_ROOT": str(self.dir / "great_expectations"),
            "PREFECT_HOME": str(self.dir / ".prefect"),
            "TMPDIR": str(self.dir / "tmp"),
            "PREFECT_WORKER_QUERY_SECONDS": "2",
        }


def make_checkout(host: Host, year: pd.DataFrame) -> None:
    """A copy of the project for one host, with the test's config and its first landed data."""
    ignore = shutil.ignore_patterns("__pycache__", "uncommitted")
    for name in CHECKOUT:
        shutil.copytree(ROOT / name, host.dir / name, ignore=ignore)
    shutil.copytree(ROOT / "great_expectations", host.dir / "great_expectations", ignore=ignore)
    raw = yaml.safe_load(BIKESHARE_CONFIG.read_text())
    raw.update(
        name="two-hosts",
        registered_model_name=MODEL,
        source={"kind": "csv", "path": LANDING},
        training_window={"time_column": "timestamp", "days": 92},
        tuning={"cv_folds": 2, "max_configs_per_candidate": 1},
        candidates=[
            {"name": "ridge", "estimator": "linear", "search_space": {"alpha": [1.0]}},
            {"name": "hgb", "estimator": "hist_gradient_boosting", "params": {"max_iter": 60}},
        ],
    )
    raw["gate"]["thresholds"] = {}
    (host.dir / CONFIG).write_text(yaml.safe_dump(raw))
    (host.dir / "data").mkdir()
    months(year, 1, 3).to_csv(host.dir / LANDING, index=False)
    (host.dir / "tmp").mkdir()
    (host.dir / "HOST").write_text(host.name)


def two_host_deployments(path: Path) -> Path:
    """prefect.yaml's training and monitoring deployments, each on its own work queue, no
    schedules (a run the test did not ask for would land on a host at random)."""
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    kept = []
    for deployment in spec["deployments"]:
        if deployment["name"] in QUEUES:
            deployment["work_pool"] = {
                **deployment["work_pool"],
                "work_queue_name": QUEUES[deployment["name"]],
            }
            deployment.pop("schedules", None)
            kept.append(deployment)
    spec["deployments"] = kept
    spec.pop("definitions", None)  # its anchors are already resolved by the load
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@contextlib.contextmanager
def started(command: list[str], cwd: Path, env: dict[str, str], log: Path) -> Iterator[int]:
    """A process in a session of its own, its output in `log`; its whole group is ended after."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield process.pid
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=20)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # flow-run children too
            process.wait(timeout=20)


def served_version(url: str) -> str | None:
    try:
        answer = httpx.get(f"{url}/metadata", timeout=10)
    except httpx.HTTPError:
        return None
    return str(answer.json()["version"]) if answer.status_code == 200 else None


def worker_of(run_id: str, logs: dict[str, Path]) -> list[str]:
    """The hosts whose worker took a flow run: submitted it, and the server did not refuse the
    claim (a second worker asking for a run already claimed is told to abort)."""
    took = []
    for name, log in logs.items():
        text = log.read_text(errors="replace") if log.exists() else ""
        claimed = f"submitting flow run '{run_id}'" in text
        if claimed and f"Aborted submission of flow run '{run_id}'" not in text:
            took.append(name)
    return took


def completed(stack: Stack, flow: str, run_id: str) -> bool:
    state = next(r["state_type"] for r in flow_runs(stack, flow) if r["id"] == run_id)
    assert state not in ("FAILED", "CRASHED", "CANCELLED"), f"{flow} run {run_id}: {state}"
    return state == "COMPLETED"


@pytest.fixture
def workdir() -> Iterator[Path]:
    try:
        find_bin_dir()
    except PostgresError as exc:
        pytest.fail(str(exc))  # names .ci/install-postgres.sh
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.fail("the two hosts need `unshare -m` as root (util-linux)")
    # PostgreSQL runs as user postgres, who must traverse to its cluster (see test_production).
    root = Path(tempfile.mkdtemp(prefix="mlops-two-hosts-"))
    os.chmod(root, 0o711)
    try:
        yield root
    finally:
        with contextlib.suppress(PostgresError):
            LocalPostgres(root / "infra" / ".mlops").remove()
        kept = ROOT / ".test-logs" / "two-hosts"  # the workers' and servers' logs, for a reader
        shutil.rmtree(kept, ignore_errors=True)
        with contextlib.suppress(OSError):
            shutil.copytree(root / "logs", kept)
            shutil.copytree(root / "infra" / ".mlops" / "logs", kept / "stack")
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.timeout(2400)
def test_two_hosts_sharing_only_the_artifact_root_close_the_loop(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    began = time.monotonic()
    year = pd.read_csv(BIKESHARE_CSV)
    host_a, host_b = Host("a", workdir / "host-a"), Host("b", workdir / "host-b")
    service_dir, logs_dir = workdir / "service", workdir / "logs"
    for folder in (service_dir, logs_dir):
        folder.mkdir()
    for host in (host_a, host_b):
        make_checkout(host, year)
    settings = StackSettings(
        dir=workdir / "infra" / ".mlops",
        prefect_port=free_port(),
        mlflow_port=free_port(),
        serve_port=free_port(),
        report_port=free_port(),
        model_name=MODEL,
        profile="production",
        mlflow_workers=1,
        start_timeout=300,
    )
    # No MLOPS_* of the calling shell: each process gets exactly its host's.
    base = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    try:
        # As `mlops up --profile production` does, but both servers start side by side.
        print(*prepare_databases(settings), sep="\n")
        servers = [s for s in services(settings, ROOT) if s.name in SERVERS]
        with ThreadPoolExecutor(len(servers)) as pool:
            print(*pool.map(lambda s: start_service(settings, s), servers), sep="\n")
        # The cluster's URL (and its password file) are known once it runs.
        env = {**base, **stack_env(settings), "COLUMNS": "300"}
        env.pop("MLOPS_REPORTS_URL")  # no report server here: reports are named by path
        log_url = env["MLOPS_SERVE_LOG_URL"]
        # The test's own look-ups of the SQL log find the cluster's password as the hosts do.
        monkeypatch.setenv("PGPASSFILE", env["PGPASSFILE"])
        (settings.dir / "mlartifacts").mkdir(parents=True, exist_ok=True)
        stack = Stack(settings, env, workdir)
        with moto_s3() as s3:
            bucket = s3.new_bucket()
            root_uri = f"s3://{bucket}/two-hosts"
            _close_the_loop(stack, s3, root_uri, host_a, host_b, service_dir, logs_dir, log_url)
    finally:
        print(*stack_down(settings, ROOT), sep="\n")
        print(f"two hosts: {time.monotonic() - began:.0f} s")


def _close_the_loop(
    stack: Stack,
    s3: S3Server,
    root_uri: str,
    host_a: Host,
    host_b: Host,
    service_dir: Path,
    logs_dir: Path,
    log_url: str,
) -> None:
    year = pd.read_csv(BIKESHARE_CSV)
    mlartifacts = stack.settings.dir / "mlartifacts"
    setup = stack.run("python", "-m", "deployments.setup")
    assert setup.returncode == 0, setup.stdout + setup.stderr

    prefect = str(BIN / "prefect")
    pool = ["worker", "start", "--pool", "mlops-process", "--type", "process"]
    queues_b = ["--work-queue", "monitoring", "--work-queue", "training"]
    worker_logs = {"a": logs_dir / "worker-a.log", "b": logs_dir / "worker-b.log"}
    serve = [str(BIN / "mlops"), "serve", "--model", MODEL, "--port"]
    serve += [str(stack.settings.serve_port), "--poll-seconds", "2", "--no-onnx"]
    service_env = {**stack.env, "MLOPS_SERVE_LOG_FLUSH_SECONDS": "0.5"}
    url = stack.settings.serve_url
    with contextlib.ExitStack() as running:
        # The service starts with no champion yet and follows the alias from the third folder.
        running.enter_context(
            started(
                isolated(serve, [host_a.dir, host_b.dir, mlartifacts]),
                service_dir,
                service_env,
                logs_dir / "service.log",
            )
        )
        worker_a = running.enter_context(
            started(
                isolated(
                    [prefect, *pool, "--name", "host-a", "--work-queue", "training"],
                    [host_b.dir, mlartifacts],
                ),
                host_a.dir,
                host_a.env(stack.env, s3, root_uri),
                worker_logs["a"],
            )
        )
        # Deployed while the worker starts: it finds its queue's runs once the queue exists.
        spec = two_host_deployments(logs_dir.parent / "prefect.yaml")
        deploy = stack.run("prefect", "--no-prompt", "deploy", "--all", "--prefect-file", str(spec))
        assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-3000:]
        config_param = {"config_path": CONFIG}
        first = stack.run(
            "prefect",
            "deployment",
            "run",
            "training/train",
            "--watch",
            "--param",
            f"params={json.dumps(config_param)}",
            timeout=900,
        )
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
        trained = flow_runs(stack, "training")
        assert [r["state_type"] for r in trained] == ["COMPLETED"]
        assert worker_of(trained[0]["id"], worker_logs) == ["a"]

        # Host B comes up now (the first training could only be A's) and takes monitoring, and
        # training too: the trigger's retraining goes to whichever worker asks first.
        worker_b = running.enter_context(
            started(
                isolated(
                    [prefect, *pool, "--name", "host-b", *queues_b],
                    [host_a.dir, mlartifacts],
                ),
                host_b.dir,
                host_b.env(stack.env, s3, root_uri),
                worker_logs["b"],
            )
        )
        # Neither worker sees the other's files, nor MLflow's artifact folder; both see their own.
        for pid, mine, theirs in ((worker_a, host_a, host_b), (worker_b, host_b, host_a)):
            wait_for(
                lambda pid=pid: str(mlartifacts) in Path(f"/proc/{pid}/mountinfo").read_text(),
                30,
                f"worker {mine.name}'s mounts",
            )
            seen = Path(f"/proc/{pid}/root")  # paths as that worker's namespace resolves them
            assert (seen / str(mine.dir / "HOST").lstrip("/")).read_text() == mine.name
            assert not (seen / str(theirs.dir / "HOST").lstrip("/")).exists()
            assert not list((seen / str(mlartifacts).lstrip("/")).iterdir())
        assert list(mlartifacts.rglob("MLmodel")), "MLflow stored the model on its own disk"
        # What A's training kept on its host stayed there; its snapshots and splits are on S3.
        assert (host_a.dir / "artifacts").is_dir() and not (host_b.dir / "artifacts").exists()
        published = s3.filesystem().find(root_uri)
        assert any("/snapshots/" in key for key in published), published
        assert any("/splits/" in key for key in published), published

        wait_for(lambda: served_version(url) == "1", 180, "the service to load v1")
        summer = months(year, 7, 9)
        features = [c for c in summer.columns if c not in FEATURES_DROPPED]
        sent = replay(url, summer, features, "bikers")

        def logged() -> bool:
            log = read_prediction_log(url=log_url, model_name=MODEL)
            return len(log) >= sent and log["label"].notna().sum() >= sent

        wait_for(logged, 120, f"{sent} labelled predictions in PostgreSQL")
        for host in (host_a, host_b):  # new data landed, on every host's copy
            pd.concat([months(year, 1, 3), summer]).to_csv(host.dir / LANDING, index=False)

        monitor_param = {"config_path": CONFIG, "window": {"hours": 24}}
        monitoring = stack.run(
            "prefect",
            "deployment",
            "run",
            "monitoring/monitor-bikeshare",
            "--watch",
            "--param",
            f"params={json.dumps(monitor_param)}",
            timeout=900,
        )
        assert monitoring.returncode == 0, monitoring.stdout[-3000:] + monitoring.stderr[-2000:]
        monitored = flow_runs(stack, "monitoring")
        assert worker_of(monitored[0]["id"], worker_logs) == ["b"]
        assert (host_b.dir / "artifacts" / "monitoring").is_dir()
        assert not (host_a.dir / "artifacts" / "monitoring").exists()
        # B's reference and holdout are the splits A published, read through the S3 root.
        a_splits = {key.split("/", 1)[1] for key in published if "/splits/" in key}
        b_cached = [str(p) for p in (host_b.dir / "artifacts" / "cache").rglob("*.parquet")]
        assert any(path.endswith(key) for path in b_cached for key in a_splits), b_cached

        def triggered() -> list[dict]:
            return [
                r
                for r in flow_runs(stack, "training")
                if r["parameters"].get("params", {}).get("window") == "recent"
            ]

        retraining = wait_for(triggered, 240, "the trigger to start training")
        assert len(retraining) == 1
        assert retraining[0]["parameters"]["params"]["config_path"] == CONFIG
        run_id = retraining[0]["id"]
        wait_for(lambda: completed(stack, "training", run_id), 900, "the retraining to complete")
        took = worker_of(run_id, worker_logs)
        assert len(took) == 1, took
        print(f"retraining ran on host {took[0]}")

        client = MlflowClient(tracking_uri=stack.settings.mlflow_url)
        champion = client.get_registered_model(MODEL).aliases.get("champion")
        assert str(champion) == "2"
        wait_for(lambda: served_version(url) == "2", 180, "the service to swap to v2")
        rows = months(year, 7, 7).head(5)[features].to_dict(orient="records")
        answer = httpx.post(f"{url}/predict", json={"records": rows}, timeout=30)
        assert answer.status_code == 200, answer.text
