"""Benchmark: drift onset to new champion served, for two models monitored side by side.

Issue 11 (Measure). One real local stack on loopback (`prefect_mlops.stack`: Prefect server,
process worker, MLflow server; free ports, a temporary project state), two models made from
configs/bikeshare.yaml (`bench-loop-a`, `bench-loop-b`, the simulation's fast candidate search),
each deployed with its own train/monitor/score deployments and `retrain-<model>` trigger
(`deployments.deploy.deploy_models`, as `mlops deploy --config` does), each served by its own
prediction service (`mlops serve --model NAME`, alias polling every 2 s) logging into one shared
prediction-log root. Then, as tests/system/test_loop.py drives the loop:

1. both models are trained on January-March by their `train-<model>` deployment (champion v1);
2. July-September rows (a seeded sample, with labels) are replayed to both services at once;
   t0 = the moment the first drifted request is sent (per model);
3. right after the replay, with the new months landed in each model's source, both models'
   `monitor-<model>` deployments are run through the Prefect client;
4. the retrain trigger starts `train-<model>` on the recent window; the service follows the alias.

Recorded per model, in seconds from t0: `replay` (last label sent), `log_flushed` (both models'
rows readable in the shared log; the monitoring runs are requested then), `monitor_start` (the
worker started the monitoring run), `detect` (its alarm event occurred on the server),
`monitor_done` (that run finished), `retrain_created` (the trigger created the training run),
`retrain_start` (the worker started it), `promoted` (MLflow's champion alias left v1, seen by
polling), `served` (the service's /metadata answered a version other than v1: the end of the
loop) and `retrain_done` (the training run finished; it may end after the swap). Polled about
every 0.5-1 s. Every wait is bounded; every process started here is stopped in `finally`.

    .venv/bin/python -m bench.closed_loop            # table on stdout,
                                                     # bench/results/closed-loop-<timestamp>.json
    .venv/bin/python -m bench.closed_loop --rows 300 # rows replayed per model (default 300)

The figure includes the worker's pick-up and process start-up of each flow run (a process work
pool: `*_start` is when the flow's own process reported Running) and the monitoring deployment
being started by the benchmark right after the replay, not by its hourly schedule (in production
the schedule adds up to an hour before `monitor_start`).

Seen 2026-12-01 (2 cores shared with other jobs, load ~14), 300 rows per model, seconds from t0:
a: replay 2.6, monitor_start 49.6, detect 80.8, retrain_created 83.9, retrain_start 127.6,
promoted 187.5, served 189.4; b: 2.2, 45.7, 76.0, 79.9, 127.0, 180.4, 183.3. Both alarms were
drift-detected + performance-degraded, one triggered training run per model, both served v2.
The two worker pick-ups (~45 s each) are about half the loop; the trigger answers in ~3 s, the
service follows the alias in ~2 s (its poll interval).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pandas as pd
import yaml

from deployments.replay import free_port, replay, wait_for_log
from deployments.simulate import BIKESHARE_CSV, months, replay_sample, write_simulation_config
from prefect_mlops.config import load_config
from prefect_mlops.features import infer_schema
from prefect_mlops.monitoring.records import DRIFT_DETECTED, PERFORMANCE_DEGRADED
from prefect_mlops.stack import (
    Service,
    StackSettings,
    stack_down,
    stack_env,
    stack_up,
    start_service,
    stop_service,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
MODELS = ("bench-loop-a", "bench-loop-b")
TRAIN_MONTHS = (1, 3)
DRIFT_MONTHS = (7, 9)
STACK_SERVICES = ["prefect-server", "mlflow-server", "prefect-worker"]
TRAIN_TIMEOUT = 900.0
MONITOR_TIMEOUT = 600.0
LOOP_TIMEOUT = 900.0
BIN = Path(sys.executable).parent
T = TypeVar("T")


def wait_for(predicate: Callable[[], T | None], seconds: float, what: str, every: float = 1.0) -> T:
    """The first truthy value of `predicate`, polled until `seconds` have passed."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"timed out after {seconds:.0f} s waiting for {what}")


def epoch(stamp: str | None) -> float | None:
    """Seconds since the epoch of an ISO timestamp the Prefect API returns."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() if stamp else None


def model_config(folder: Path, model: str, landing: Path) -> Path:
    """The simulation's fast bikeshare config under the model's own names, gate thresholds off
    (as the closed-loop system test): a retraining that registers is promoted."""
    folder.mkdir(parents=True, exist_ok=True)
    path = write_simulation_config(folder, landing, recent_days=92, fast=True)
    raw = yaml.safe_load(path.read_text())
    raw.update(name=model, registered_model_name=model, experiment_name=model)
    raw["gate"]["thresholds"] = {}
    mine = folder / f"{model}.yaml"
    mine.write_text(yaml.safe_dump(raw, sort_keys=False))
    path.unlink()
    return mine


class Api:
    """The few Prefect REST calls the benchmark polls (the client's run_deployment starts runs)."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=20)

    def flow_run(self, run_id: str) -> dict[str, Any]:
        answer = self.http.get(f"/flow_runs/{run_id}")
        answer.raise_for_status()
        return dict(answer.json())

    def training_runs(self) -> list[dict[str, Any]]:
        body = {
            "flows": {"name": {"any_": ["training"]}},
            "sort": "EXPECTED_START_TIME_DESC",
            "limit": 50,
            "offset": 0,
        }
        answer = self.http.post("/flow_runs/filter", json=body)
        answer.raise_for_status()
        return list(answer.json())

    def model_events(self, model: str) -> list[dict[str, Any]]:
        body = {"filter": {"event": {"prefix": ["mlops.model."]}}, "limit": 50}
        answer = self.http.post("/events/filter", json=body)
        answer.raise_for_status()
        return [
            e
            for e in answer.json()["events"]
            if e["resource"]["prefect.resource.id"] == f"mlops.model.{model}"
        ]


def start_run(deployment: str, parameters: dict[str, Any] | None = None) -> str:
    """Start a deployment run through the Prefect client (`prefect deployment run`); its id."""
    from prefect.deployments import run_deployment

    run = run_deployment(name=deployment, parameters=parameters or {}, timeout=0)
    return str(run.id)  # type: ignore[union-attr]  # sync call: a FlowRun, not a coroutine


def finished(api: Api, run_id: str, seconds: float) -> dict[str, Any]:
    """The flow run once it reached a final state (raises when it did not complete)."""

    def final() -> dict[str, Any] | None:
        now = api.flow_run(run_id)
        return now if now["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") else None

    run = wait_for(final, seconds, f"flow run {run_id}")
    if run["state_type"] != "COMPLETED":
        raise RuntimeError(f"flow run {run['name']} ({run_id}) ended {run['state_name']}")
    return run


def served_version(url: str) -> str | None:
    """The version the service answers with (its own alias polling, no /reload)."""
    try:
        answer = httpx.get(f"{url}/metadata", timeout=5)
    except httpx.HTTPError:
        return None
    return str(answer.json()["version"]) if answer.status_code == 200 else None


def on_version(url: str, version: str) -> bool:
    return served_version(url) == version


def champion(mlflow_url: str, model: str) -> str | None:
    from mlflow.tracking import MlflowClient

    aliases = MlflowClient(tracking_uri=mlflow_url).get_registered_model(model).aliases
    return str(aliases["champion"]) if "champion" in aliases else None


def service(model: str, stack: StackSettings, port: int, log_root: Path, root: Path) -> Service:
    """One model's prediction service, started and stopped like the stack's own."""
    return Service(
        name=f"serve-{model}",
        command=[
            *(str(BIN / "mlops"), "serve", "--model", model, "--host", stack.host),
            *("--port", str(port), "--poll-seconds", "2", "--no-onnx"),
        ],
        port=port,
        health_url=f"http://{stack.host}:{port}/v2/health/live",
        env={
            **stack_env(stack),
            "MLOPS_SERVE_LOG_DIR": str(log_root),
            "MLOPS_SERVE_LOG_SPOOL_DIR": str(root / f"spool-{model}"),
            "MLOPS_SERVE_LOG_FLUSH_SECONDS": "0.5",
        },
    )


def run(rows: int) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="bench-closed-loop-"))
    gx_root = root / "great_expectations"
    shutil.copytree(
        ROOT / "great_expectations", gx_root, ignore=shutil.ignore_patterns("uncommitted")
    )
    artifacts = root / "artifacts"
    log_root = artifacts / "prediction_log"
    stack = StackSettings(
        dir=root / ".mlops",
        prefect_port=free_port(),
        mlflow_port=free_port(),
        serve_port=free_port(),
        start_timeout=240,
    )
    os.environ.update(
        {
            "MLOPS_ARTIFACT_ROOT": str(artifacts),
            "MLOPS_GX_ROOT": str(gx_root),
            "MLOPS_SERVE_LOG_DIR": str(log_root),
            "PREFECT_HOME": str(root / "client-prefect"),
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        }
    )
    os.environ.update(stack_env(stack))  # this process is a client of the stack
    year = pd.read_csv(BIKESHARE_CSV)
    serving = {m: service(m, stack, free_port(), log_root, root) for m in MODELS}
    marks: dict[str, dict[str, Any]] = {m: {} for m in MODELS}
    notes: list[str] = []
    started = time.monotonic()
    try:
        for line in stack_up(stack, ROOT, STACK_SERVICES):
            print(line, flush=True)
        api = Api(stack.prefect_api_url)
        landing = {m: root / m / "landing.csv" for m in MODELS}
        configs = {}
        for model in MODELS:
            landing[model].parent.mkdir(parents=True)
            months(year, *TRAIN_MONTHS).to_csv(landing[model], index=False)
            configs[model] = model_config(root / model, model, landing[model])
        env = {**os.environ, "COLUMNS": "300"}
        for command in (
            ["python", "-m", "deployments.setup"],
            ["mlops", "deploy", *[a for m in MODELS for a in ("--config", str(configs[m]))]],
        ):
            done = subprocess.run(
                [str(BIN / command[0]), *command[1:]],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            if done.returncode != 0:
                raise RuntimeError(f"{command} failed: {(done.stdout + done.stderr)[-2000:]}")
            print(done.stdout.strip(), flush=True)

        first = {m: start_run(f"training/train-{m}") for m in MODELS}
        for model, run_id in first.items():
            finished(api, run_id, TRAIN_TIMEOUT)
            version = champion(stack.mlflow_url, model)
            if version != "1":
                raise RuntimeError(f"{model}: champion after the first training is v{version}")
        print("trained both models: champions v1", flush=True)

        for model in MODELS:
            start_service(stack, serving[model])
            url = f"http://{stack.host}:{serving[model].port}"
            wait_for(partial(on_version, url, "1"), 180, f"{model}'s service on v1")
        print("both services answer v1", flush=True)

        drifted = replay_sample(months(year, *DRIFT_MONTHS), rows)
        config = load_config(configs[MODELS[0]])
        target = config.target
        features = infer_schema(months(year, *TRAIN_MONTHS), config).features
        sent: dict[str, int] = {}

        def send(model: str) -> None:
            url = f"http://{stack.host}:{serving[model].port}"
            marks[model]["t0"] = time.time()
            sent[model] = replay(url, drifted, features, target)
            marks[model]["replay"] = time.time()

        threads = [threading.Thread(target=send, args=(m,)) for m in MODELS]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=600)
        if set(sent) != set(MODELS):
            raise RuntimeError(f"replay did not finish for every model: sent {sent}")
        wait_for_log(log_root, sum(sent.values()))
        for model in MODELS:
            marks[model]["log_flushed"] = time.time()
        print(f"replayed {sent} rows of months {DRIFT_MONTHS}", flush=True)
        for model in MODELS:  # the replayed months have happened: they land in each source
            months(year, TRAIN_MONTHS[0], DRIFT_MONTHS[1]).to_csv(landing[model], index=False)

        window = {"hours": 24, "log_dir": str(log_root)}
        monitors = {
            m: start_run(
                f"monitoring/monitor-{m}",
                {"params": {"config_path": str(configs[m]), "alias": "champion", "window": window}},
            )
            for m in MODELS
        }
        pending = set(MODELS)
        deadline = time.monotonic() + LOOP_TIMEOUT
        while pending and time.monotonic() < deadline:
            for model in sorted(pending):
                poll(model, api, stack, serving[model], configs[model], monitors, marks)
                if {"served", "retrain_done"} <= set(marks[model]):
                    pending.discard(model)
                    print(f"{model}: new champion served", flush=True)
            time.sleep(0.5)
        for model in pending:
            notes.append(f"{model}: no new champion served within {LOOP_TIMEOUT:.0f} s")
    except Exception as exc:  # the figures reached so far are still written
        notes.append(f"{type(exc).__name__}: {exc}")
        raise
    finally:
        for model in MODELS:
            print(stop_service(stack, serving[model]), flush=True)
        for line in stack_down(stack, ROOT, STACK_SERVICES):
            print(line, flush=True)
        result = report(marks, rows, notes, time.monotonic() - started)
        shutil.rmtree(root, ignore_errors=True)
    return result


def poll(
    model: str,
    api: Api,
    stack: StackSettings,
    serving: Service,
    config: Path,
    monitors: dict[str, str],
    marks: dict[str, dict[str, Any]],
) -> None:
    """One look at every step of a model's loop not yet seen, marking when each happened."""
    mark = marks[model]
    if "monitor_done" not in mark:
        run = api.flow_run(monitors[model])
        if run["state_type"] in ("FAILED", "CRASHED", "CANCELLED"):
            raise RuntimeError(f"{model}: monitoring run ended {run['state_name']}")
        if run["start_time"]:
            mark["monitor_start"] = epoch(run["start_time"])
        if run["state_type"] == "COMPLETED":
            mark["monitor_done"] = epoch(run["end_time"])
    if "detect" not in mark:
        alarms = (DRIFT_DETECTED, PERFORMANCE_DEGRADED)
        events = [e for e in api.model_events(model) if e["event"] in alarms]
        if events:
            mark["detect"] = min(epoch(e["occurred"]) or 0.0 for e in events)
            mark["event_names"] = sorted({e["event"] for e in events})
    if "retrain_done" not in mark:
        triggered = [
            r
            for r in api.training_runs()
            if r["parameters"].get("params", {}).get("window") == "recent"
            and r["parameters"]["params"].get("config_path") == str(config)
        ]
        if triggered:
            run = triggered[-1]  # the first the trigger created (the API sorts newest first)
            mark["retrain_runs"] = len(triggered)
            mark["retrain_created"] = epoch(run["created"])
            mark["retrain_start"] = epoch(run["start_time"])
            if run["state_type"] in ("FAILED", "CRASHED", "CANCELLED"):
                raise RuntimeError(f"{model}: retraining run ended {run['state_name']}")
            if run["state_type"] == "COMPLETED":
                mark["retrain_done"] = epoch(run["end_time"])
    if "promoted" not in mark and champion(stack.mlflow_url, model) not in (None, "1"):
        mark["promoted"] = time.time()
    if "served" not in mark:
        version = served_version(f"http://{stack.host}:{serving.port}")
        if version not in (None, "1"):
            mark["served"] = time.time()
            mark["served_version"] = version


STEPS = (
    "replay",
    "log_flushed",
    "monitor_start",
    "detect",
    "monitor_done",
    "retrain_created",
    "retrain_start",
    "promoted",
    "served",
    "retrain_done",
)


def report(
    marks: dict[str, dict[str, Any]], rows: int, notes: list[str], wall: float
) -> dict[str, Any]:
    """Seconds from t0 per step and model; printed as a table and written as JSON."""
    figures = {}
    for model, mark in marks.items():
        t0 = mark.get("t0")
        figures[model] = {
            step: round(mark[step] - t0, 1) if t0 and mark.get(step) else None for step in STEPS
        }
        figures[model]["events"] = mark.get("event_names")
        figures[model]["triggered_training_runs"] = mark.get("retrain_runs")
        figures[model]["served_version"] = mark.get("served_version")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    result = {
        "benchmark": "closed loop: drift onset (first drifted request) to new champion served",
        "models": list(marks),
        "rows_replayed_per_model": rows,
        "seconds_from_t0": figures,
        "bench_wall_seconds": round(wall, 1),
        "notes": notes,
        "machine": {"cpus": os.cpu_count(), "load_1m": round(os.getloadavg()[0], 1)},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"closed-loop-{stamp}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    header = f"{'model':<14}" + "".join(f"{s:>16}" for s in STEPS)
    print(header)
    for model, row in figures.items():
        cells = "".join(f"{'-' if row[s] is None else row[s]:>16}" for s in STEPS)
        print(f"{model:<14}{cells}")
    for note in notes:
        print(f"note: {note}")
    print(f"written {path.relative_to(ROOT)}")
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300, help="drifted rows replayed per model")
    run(parser.parse_args(argv).rows)


if __name__ == "__main__":
    main()
