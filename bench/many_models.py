"""Benchmark (issue 15, measure a): many models monitored on one PostgreSQL-backed Prefect server.

The production stack (`mlops up --profile production`: a local PostgreSQL, the Prefect server and
MLflow on it) with two process workers in one pool. One small model is trained; N-1 more are
registered as copies of its version (`copy_model_version`, lineage tags included), so each of the N
models has a champion of its own name and its own config. Each gets a small window of online
predictions in the PostgreSQL prediction log. Then N monitoring runs of one deployment, one per
model, are created at once and the two workers run them (the pool's concurrency limit keeps the
2-core machine from starting N Python processes at once). Measured: runs per minute from the
first submission to the last run's end, every run's final state (failed, crashed and stuck runs
counted; stuck = not finished at the deadline), and the latency of every API call the bench
makes while the runs go (submissions and state polls): p50 and p99.

    .venv/bin/python -m bench.many_models [--models 50] [--rows 200] [--pool-limit 4]

Figures: see README "Production topology"; JSON in bench/results/many_models.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "many_models.json"
CSV = ROOT / "data" / "bikeshare" / "bikeshare_hourly_2011.csv"
CONFIG = ROOT / "configs" / "bikeshare.yaml"
DROPPED = ("bikers", "casual", "registered", "timestamp")
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def model_config(work: Path, index: int) -> Path:
    """A small training config of model `bench-model-<index>`."""
    raw = yaml.safe_load(CONFIG.read_text())
    raw["source"]["path"] = str(CSV)
    raw["registered_model_name"] = f"bench-model-{index:03d}"
    raw["tuning"] = {"cv_folds": 2, "max_configs_per_candidate": 1}
    raw["candidates"] = [{"name": "ridge", "estimator": "linear", "search_space": {"alpha": [1.0]}}]
    raw["gate"]["thresholds"] = {}
    path = work / "configs" / f"model-{index:03d}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def log_window(url: str, env: dict[str, str], models: list[str], rows: int) -> None:
    """`rows` online predictions of each model in the PostgreSQL prediction log."""
    import numpy as np

    from prefect_mlops.prediction_log import PredictionRecord, SqlStore

    os.environ.update(env)  # PGPASSFILE
    frame = pd.read_csv(CSV).drop(columns=list(DROPPED)).sample(rows, random_state=3)
    columns = {str(c): frame[c].tolist() for c in frame.columns}
    store = SqlStore(url)
    now = time.time()
    store.append_predictions(
        [
            PredictionRecord(f"{name}-window", now, name, "1", columns, np.zeros(rows), None)
            for name in models
        ]
    )


async def run_monitoring(
    api_url: str, pool: str, configs: list[Path], log_url: str, deadline_s: float
) -> dict[str, Any]:
    """Create one monitoring run per config at once; poll until all end or the deadline."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    calls: dict[str, list[float]] = {"create_flow_run": [], "read_flow_runs": []}
    async with get_client() as client:
        flow_id = await client.create_flow_from_name("monitoring")
        deployment_id = await client.create_deployment(
            flow_id=flow_id,
            name="monitor-many",
            work_pool_name=pool,
            entrypoint="flows/monitoring.py:monitoring_flow",
            pull_steps=[
                {"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}
            ],
            enforce_parameter_schema=False,
        )
        started = time.monotonic()
        ids = []
        for config in configs:
            params = {
                "config_path": str(config),
                "window": {"log_url": log_url, "hours": 24},
                "emit_events": False,
            }
            before = time.perf_counter()
            run = await client.create_flow_run_from_deployment(
                deployment_id, parameters={"params": params}
            )
            calls["create_flow_run"].append(time.perf_counter() - before)
            ids.append(run.id)
        states: dict[str, str] = {}
        ends: dict[str, float] = {}
        while time.monotonic() - started < deadline_s:
            before = time.perf_counter()
            runs = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)), limit=len(ids)
            )
            calls["read_flow_runs"].append(time.perf_counter() - before)
            for run in runs:
                state = run.state_type.value if run.state_type else "NONE"
                states[str(run.id)] = state
                if state in TERMINAL and str(run.id) not in ends:
                    ends[str(run.id)] = time.monotonic() - started
            if len(ends) == len(ids):
                break
            await asyncio.sleep(2)
        runs = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)), limit=len(ids)
        )
        messages = [
            f"{r.name}: {r.state.message if r.state else ''}"[:300]
            for r in runs
            if r.state_type and r.state_type.value in ("FAILED", "CRASHED")
        ]
    wall = max(ends.values()) if ends else float("nan")
    latencies = [t for values in calls.values() for t in values]
    counts = {kind: sum(1 for s in states.values() if s == kind) for kind in TERMINAL}
    return {
        "runs": len(ids),
        "wall_seconds": round(wall, 1),
        "runs_per_minute": round(len(ends) / wall * 60, 2) if ends else 0.0,
        "states": counts,
        "stuck": len(ids) - len(ends),
        "api_calls": len(latencies),
        "api_p50_ms": round(statistics.median(latencies) * 1000, 1),
        "api_p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        "api_p99_ms_by_call": {k: round(percentile(v, 0.99) * 1000, 1) for k, v in calls.items()},
        "failure_messages": messages[:5],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--rows", type=int, default=200, help="window rows per model")
    parser.add_argument("--pool-limit", type=int, default=4, help="runs at once in the pool")
    parser.add_argument("--deadline", type=float, default=1800, help="seconds before 'stuck'")
    args = parser.parse_args()

    from prefect_mlops.postgres import LocalPostgres
    from prefect_mlops.stack import (
        WORK_POOL,
        StackSettings,
        database_urls,
        stack_down,
        stack_env,
        stack_up,
    )
    from tests.system.conftest import free_port

    work = Path(tempfile.mkdtemp(prefix="bench-many-"))
    os.chmod(work, 0o711)  # as root, PostgreSQL runs as user postgres, who must reach it
    gx_root = work / "great_expectations"
    shutil.copytree(ROOT / "great_expectations", gx_root, ignore=shutil.ignore_patterns("unc*"))
    os.environ.update(
        MLOPS_ARTIFACT_ROOT=str(work / "artifacts"),
        MLOPS_GX_ROOT=str(gx_root),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        # A loaded 2-core machine: the stack's fail-fast client timeouts (10 s, 20 s) are too short.
        MLFLOW_HTTP_REQUEST_TIMEOUT="60",
        PREFECT_API_REQUEST_TIMEOUT="60",
    )
    stack = StackSettings(
        dir=work / ".mlops",
        profile="production",
        prefect_port=free_port(),
        mlflow_port=free_port(),
        serve_port=free_port(),
        start_timeout=600,
    )
    second: subprocess.Popen[bytes] | None = None
    try:
        setup_started = time.monotonic()
        for line in stack_up(stack, ROOT, ["prefect-server", "mlflow-server"]):
            print(line, flush=True)
        env = {**os.environ, **stack_env(stack), "MLOPS_PROJECT_DIR": str(ROOT)}
        prefect = str(Path(sys.executable).parent / "prefect")
        for command in (
            ["work-pool", "create", WORK_POOL, "--type", "process"],
            ["work-pool", "set-concurrency-limit", WORK_POOL, str(args.pool_limit)],
        ):
            done = subprocess.run([prefect, *command], env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"prefect {' '.join(command)}: {done.stdout}{done.stderr}")
        for line in stack_up(stack, ROOT, ["prefect-worker"]):
            print(line, flush=True)
        second = subprocess.Popen(
            [prefect, "worker", "start", "--pool", WORK_POOL],
            env=env,
            stdout=(work / "worker-2.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        configs = [model_config(work, i) for i in range(args.models)]
        trained = subprocess.run(
            [str(Path(sys.executable).parent / "mlops"), "train", "--config", str(configs[0])],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        if trained.returncode != 0:
            raise RuntimeError(trained.stdout[-2000:] + trained.stderr[-2000:])
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=stack.mlflow_url)
        names = [f"bench-model-{i:03d}" for i in range(args.models)]
        for name in names[1:]:
            copy = client.copy_model_version(f"models:/{names[0]}/1", name)
            client.set_registered_model_alias(name, "champion", copy.version)
        log_url = database_urls(stack)["predictions"].render_as_string(hide_password=False)
        log_window(log_url, stack_env(stack), names, args.rows)
        setup_seconds = time.monotonic() - setup_started
        print(f"set up in {setup_seconds:.0f} s; {args.models} monitoring runs", flush=True)
        os.environ.update(PREFECT_API_URL=stack.prefect_api_url)
        result = asyncio.run(
            run_monitoring(stack.prefect_api_url, WORK_POOL, configs, log_url, args.deadline)
        )
    finally:
        if second is not None:
            os.killpg(second.pid, signal.SIGTERM)
            second.wait(timeout=30)
        for line in stack_down(stack, ROOT):
            print(line, flush=True)
        LocalPostgres(stack.dir).remove()
        shutil.rmtree(work, ignore_errors=True)
    result.update(
        models=args.models,
        window_rows=args.rows,
        pool_limit=args.pool_limit,
        workers=2,
        load_average=os.getloadavg()[0],
        command="python -m bench.many_models " + " ".join(sys.argv[1:]),
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
