"""The production profile on loopback, driven as a user drives it: a local PostgreSQL from the
project's script, `mlops up --profile production`, train, serve, the prediction log in PostgreSQL,
monitoring reading it, `mlops down`, and the cluster removed."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import psycopg2
import pytest

from prefect_mlops.postgres import LocalPostgres, PostgresError, find_bin_dir
from tests.conftest import BIKESHARE_CSV, fast_config_dict, write_config
from tests.system.conftest import BIN, ROOT, free_port

pytestmark = pytest.mark.system
MODEL = "production-demand"
FEATURES_DROPPED = ("bikers", "casual", "registered", "timestamp")


def run(env: dict[str, str], *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """A command of this environment (mlops, python -m ...), as a user's shell runs it."""
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def query(stack_dir: Path, database: str, sql: str) -> list[tuple]:
    cluster = LocalPostgres(stack_dir)
    url = cluster.url(database)
    connection = psycopg2.connect(
        host=url.host,
        port=url.port,
        user=url.username,
        dbname=database,
        passfile=str(cluster.passfile),
        connect_timeout=10,
    )
    with contextlib.closing(connection), connection.cursor() as cursor:
        cursor.execute(sql)
        return list(cursor.fetchall())


@pytest.fixture(scope="module")
def stack_dir() -> Iterator[Path]:
    try:
        find_bin_dir()
    except PostgresError as exc:
        pytest.fail(str(exc))  # names .ci/install-postgres.sh
    # As root, PostgreSQL runs as user postgres, who must reach the cluster folder: pytest's
    # own temporary folders are private to root, so this one is traversable (o+x, not listable).
    root = Path(tempfile.mkdtemp(prefix="mlops-production-"))
    os.chmod(root, 0o711)
    try:
        yield root / ".mlops"
    finally:
        with contextlib.suppress(PostgresError):
            LocalPostgres(root / ".mlops").remove()  # a test that failed half-way
        shutil.rmtree(root, ignore_errors=True)


# Seen: 16 min on 2 cores shared at a load of 35, where the default 900 s timeout fell short.
@pytest.mark.timeout(2400)
def test_production_stack_logs_predictions_to_postgresql_and_monitors_them(
    stack_dir: Path,
) -> None:
    work = stack_dir.parent
    gx_root = work / "great_expectations"
    shutil.copytree(
        ROOT / "great_expectations", gx_root, ignore=shutil.ignore_patterns("uncommitted")
    )
    raw = fast_config_dict(registered_model_name=MODEL)
    raw["gate"]["thresholds"] = {}
    config = write_config(work / "production.yaml", raw)
    ports = {name: free_port() for name in ("PREFECT", "MLFLOW", "SERVE")}
    env = {
        **os.environ,
        "MLOPS_STACK_DIR": str(stack_dir),
        **{f"MLOPS_STACK_{name}_PORT": str(port) for name, port in ports.items()},
        "MLOPS_STACK_MODEL_NAME": MODEL,
        "MLOPS_STACK_START_TIMEOUT": "300",  # MLflow's two workers start slowly on 2 busy cores
        "MLOPS_ARTIFACT_ROOT": str(work / "artifacts"),
        "MLOPS_GX_ROOT": str(gx_root),
        "MLOPS_SERVE_POLL_SECONDS": "2",
        "COLUMNS": "300",
    }

    started = run(env, "python", "-m", "prefect_mlops.postgres", "start", "--dir", str(stack_dir))
    assert started.returncode == 0, started.stderr
    assert "database predictions created" in started.stdout
    try:
        up = run(env, "mlops", "up", "--profile", "production", timeout=900)
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        assert "postgres: already running" in up.stdout
        exports = dict(re.findall(r"^export (\w+)=(.*)$", up.stdout, flags=re.MULTILINE))
        assert exports["MLOPS_SERVE_LOG_URL"].endswith("/predictions")
        assert "@" in exports["MLOPS_SERVE_LOG_URL"] and ":***@" not in up.stdout  # no password
        user = {**env, **exports}

        trained = run(user, "mlops", "train", "--config", str(config))
        assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
        # Prefect's and MLflow's records are in PostgreSQL, not in a SQLite file.
        runs = query(stack_dir, "prefect", "SELECT state_type FROM flow_run")
        assert ("COMPLETED",) in runs, runs
        models = query(stack_dir, "mlflow", "SELECT name FROM registered_models")
        assert (MODEL,) in models

        url = f"http://127.0.0.1:{ports['SERVE']}"
        deadline = time.monotonic() + 120
        while httpx.get(f"{url}/metadata", timeout=10).status_code != 200:
            assert time.monotonic() < deadline, "the service never loaded the champion"
            time.sleep(1)
        rows = pd.read_csv(BIKESHARE_CSV).head(40)
        records = rows.drop(columns=list(FEATURES_DROPPED)).to_dict(orient="records")
        answer = httpx.post(f"{url}/predict", json={"records": records}, timeout=30)
        assert answer.status_code == 200, answer.text

        logged: list[tuple] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                logged = query(
                    stack_dir,
                    "predictions",
                    f"SELECT count(*) FROM predictions WHERE model_name = '{MODEL}'",
                )
            except psycopg2.errors.UndefinedTable:  # the service's first flush creates it
                logged = [(0,)]
            if logged[0][0] >= len(records):
                break
            time.sleep(1)
        assert logged[0][0] == len(records)

        monitored = run(
            user,
            "mlops",
            "monitor",
            "--config",
            str(config),
            "--log-url",
            exports["MLOPS_SERVE_LOG_URL"],
            "--no-events",
        )
        assert monitored.returncode == 0, monitored.stdout[-3000:] + monitored.stderr[-3000:]
        assert f": {len(records)} rows" in monitored.stdout, monitored.stdout[-2000:]
    finally:
        down = run(env, "mlops", "down")  # the stack dir says a cluster was started
    assert down.returncode == 0, down.stdout + down.stderr
    assert "postgres: stopped" in down.stdout
    removed = run(env, "python", "-m", "prefect_mlops.postgres", "remove", "--dir", str(stack_dir))
    assert removed.returncode == 0, removed.stderr
    assert not (stack_dir / "postgres").exists()
    assert not (stack_dir / "postgres.pgpass").exists()
