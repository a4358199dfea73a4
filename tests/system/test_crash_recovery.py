"""kill -9 of a real `mlops train` at validation, tuning and registration, then `mlops cleanup`.

Each case starts the training CLI in its own process group against the stack's Prefect and
MLflow servers, waits for the stage (the stage's task run Running on the Prefect server; for
registration, the first version of the run's model in MLflow, a window of milliseconds, so the
kill may land inside it or just after), kills the whole group with SIGKILL and runs
`mlops cleanup` as an operator would. Nothing the run opened may stay open: its flow run is
Crashed, none of its task runs or MLflow runs is running, and no version lacks its alias.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from mlflow.tracking import MlflowClient

from prefect_mlops.lineage import FLOW_RUN_TAG
from prefect_mlops.registry import PENDING_ALIAS_TAG
from tests.conftest import BIKESHARE_CONFIG, BIKESHARE_CSV
from tests.system.conftest import BIN, ROOT, Stack

pytestmark = pytest.mark.system
STAGE_SECONDS = 120


RIDGE = {"name": "ridge", "estimator": "linear", "search_space": {"alpha": [1.0]}}
# Cross-validated for a few seconds (the tuning case's window); its refit on a loaded 2-core
# machine took a minute, so the registration case, which gets that far, trains the ridge alone.
HGB = {"name": "hgb", "estimator": "hist_gradient_boosting", "params": {"max_iter": 200}}


def crash_config(workdir: Path, model: str, candidates: list[dict[str, Any]]) -> Path:
    """A small training config of its own model: quick candidates, two folds."""
    raw = yaml.safe_load(BIKESHARE_CONFIG.read_text())
    raw.update(
        name=model,
        registered_model_name=model,
        source={"kind": "csv", "path": str(BIKESHARE_CSV)},
        tuning={"cv_folds": 2, "max_configs_per_candidate": 1},
        candidates=candidates,
    )
    raw["gate"]["thresholds"] = {}
    path = workdir / "crash.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def post(stack: Stack, route: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    answer = httpx.post(f"{stack.settings.prefect_api_url}/{route}", json=body, timeout=10)
    answer.raise_for_status()
    found: list[dict[str, Any]] = answer.json()
    return found


def flow_run_of(stack: Stack, config: Path) -> dict[str, Any] | None:
    """The training flow run started with this config (each case has its own), if any yet."""
    body = {"flows": {"name": {"any_": ["training"]}}, "sort": "START_TIME_DESC", "limit": 20}
    for run in post(stack, "flow_runs/filter", body):
        if run["parameters"].get("params", {}).get("config_path") == str(config):
            return run
    return None


def task_runs_of(stack: Stack, flow_run_id: str) -> list[dict[str, Any]]:
    return post(stack, "task_runs/filter", {"flow_runs": {"id": {"any_": [flow_run_id]}}})


def task_started(
    stack: Stack, config: Path, name_prefix: str, states: tuple[str, ...] = ("RUNNING",)
) -> Callable[[], bool]:
    """True once the run has a task run named `name_prefix`... in one of `states` on the
    Prefect server (task runs are named by what they do: `validate <suite> ...`, `cv ...`)."""

    def reached() -> bool:
        run = flow_run_of(stack, config)
        return run is not None and any(
            t["name"].startswith(name_prefix) and t["state_type"] in states
            for t in task_runs_of(stack, run["id"])
        )

    return reached


def version_created(client: MlflowClient, model: str) -> Callable[[], bool]:
    """True once the model has a version (registration has begun)."""
    return lambda: bool(client.search_model_versions(f"name = '{model}'"))


def wait_for_stage(
    phases: list[tuple[Callable[[], bool], float]], train: subprocess.Popen[bytes], log: Path
) -> None:
    """Each phase's signal in turn, polled at its own pace (fast only where the window is short:
    polling MLflow fast for the whole run would slow the run itself)."""
    for reached, poll in phases:
        deadline = time.monotonic() + STAGE_SECONDS
        while not reached():
            if train.poll() is not None:
                raise AssertionError(f"training ended before the stage: {log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"stage not reached in time: {log.read_text()[-3000:]}")
            time.sleep(poll)


@pytest.mark.parametrize("stage", ["validation", "tuning", "registration"])
def test_a_training_run_killed_mid_stage_is_closed_by_cleanup(
    stack: Stack, tmp_path: Path, stage: str
) -> None:
    model = f"crash-{stage}"
    candidates = [RIDGE] if stage == "registration" else [RIDGE, HGB]
    config = crash_config(tmp_path, model, candidates)
    client = MlflowClient(tracking_uri=stack.settings.mlflow_url)
    any_state = ("PENDING", "RUNNING", "COMPLETED")
    phases = {
        "validation": [(task_started(stack, config, "validate "), 0.1)],
        "tuning": [(task_started(stack, config, "cv "), 0.2)],
        "registration": [  # log_model, its load check and the gate come just before
            (task_started(stack, config, "log model ", any_state), 0.5),
            (version_created(client, model), 0.02),
        ],
    }[stage]
    log = tmp_path / "train.log"
    with log.open("wb") as out:
        train = subprocess.Popen(
            [str(BIN / "mlops"), "train", "--config", str(config)],
            cwd=ROOT,
            env=stack.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: SIGKILL reaches every child
        )
    try:
        wait_for_stage(phases, train, log)
    finally:
        os.killpg(train.pid, signal.SIGKILL)
        train.wait(timeout=30)
    assert train.returncode == -signal.SIGKILL
    flow_run = flow_run_of(stack, config)
    assert flow_run is not None
    flow_run_id = flow_run["id"]

    cleanup = stack.run("mlops", "cleanup", timeout=STAGE_SECONDS)
    assert cleanup.returncode == 0, cleanup.stdout[-3000:] + cleanup.stderr[-3000:]
    assert flow_run_id in cleanup.stdout  # reported among the flow runs it marked Crashed

    closed = post(stack, "flow_runs/filter", {"flow_runs": {"id": {"any_": [flow_run_id]}}})
    assert closed[0]["state_type"] == "CRASHED"
    running = [t["name"] for t in task_runs_of(stack, flow_run_id) if t["state_type"] == "RUNNING"]
    assert running == []
    experiments = [e.experiment_id for e in client.search_experiments()]
    mlflow_runs = client.search_runs(experiments, f"tags.`{FLOW_RUN_TAG}` = '{flow_run_id}'")
    if stage != "validation":  # the parent run starts after the data gate
        assert mlflow_runs, "the killed run had opened its MLflow run"
    assert [r.info.run_id for r in mlflow_runs if r.info.status == "RUNNING"] == []
    versions = client.search_model_versions(f"name = '{model}'")
    assert [v.version for v in versions if PENDING_ALIAS_TAG in v.tags] == []
    aliases = {v.version: client.get_model_version(model, v.version).aliases for v in versions}
    # Registration: the version was deleted, or the kill came after its alias was set.
    assert [version for version, names in aliases.items() if not names] == []
