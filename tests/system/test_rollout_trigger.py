"""A progressive rollout started by the registration event, through prefect.yaml's trigger.

On the real stack: `mlops train` registers v1 (the first version is champion at once); a real
service follows the model; a second `mlops train` with a better candidate keeps v2 at
`challenger` and emits `mlops.model.challenger-registered`; the `rollout-on-challenger` trigger
starts the `rollout` deployment on the worker, which walks shadow and canary steps over the
service's live traffic and promotes v2. Nothing but the event starts the rollout.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from deployments.replay import free_port
from tests.conftest import BIKESHARE_CONFIG, BIKESHARE_CSV
from tests.system.conftest import ROOT, Stack, flow_runs, wait_for

pytestmark = pytest.mark.system

MODEL = "rollout-trigger-demand"
CANDIDATES = {
    "ridge": {"name": "ridge", "estimator": "linear", "search_space": {"alpha": [1.0]}},
    "hgb": {"name": "hgb", "estimator": "hist_gradient_boosting", "params": {"max_iter": 60}},
}


def rollout_config(workdir: Path, candidate: str, service_url: str, log_dir: Path) -> Path:
    """The bikeshare pipeline under its own model name, one candidate, a short rollout."""
    raw = yaml.safe_load(BIKESHARE_CONFIG.read_text())
    raw.update(
        name="rollout-trigger",
        registered_model_name=MODEL,
        source={"kind": "csv", "path": str(BIKESHARE_CSV)},
        tuning={"cv_folds": 2, "max_configs_per_candidate": 1},
        candidates=[CANDIDATES[candidate]],
        rollout={
            "enabled": True,
            "steps": [
                {"mode": "shadow", "hold_seconds": 2, "hold_requests": 25},
                {"mode": "canary", "share": 0.5, "hold_seconds": 2, "hold_requests": 25},
            ],
            "service_urls": [service_url],
            "log_dir": str(log_dir),
            "poll_seconds": 1,
            "step_timeout_seconds": 240,
            # What this test proves is the event path, not the gate's rules (those are proven
            # in tests/flows/test_rollout.py): a better model disagrees with a worse champion,
            # and a loaded 2-core machine makes every p99 noisy.
            "thresholds": {
                "min_requests": 25,
                "min_rows": 25,
                "min_agreement": 0.0,
                "prediction_drift": False,
                "max_drift_share": 1.0,
                "max_latency_p99_ratio": 5.0,
                "latency_slack_seconds": 0.1,
            },
        },
    )
    raw["gate"]["thresholds"] = {}
    path = workdir / f"rollout-{candidate}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@dataclass
class Load:
    """Single-row /predict requests at a bounded rate; every status and arm header kept."""

    url: str
    records: list[dict]
    statuses: list[int] = field(default_factory=list)
    arms: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, max_requests: int = 30_000) -> None:
        with httpx.Client(timeout=10) as client:
            for i in range(max_requests):
                if self.stop.is_set():
                    return
                record = self.records[i % len(self.records)]
                try:
                    response = client.post(f"{self.url}/predict", json={"records": [record]})
                except httpx.HTTPError:  # counted as failed: asserted below
                    self.statuses.append(0)
                    continue
                self.statuses.append(response.status_code)
                self.arms.append(response.headers.get("x-model-arm", ""))
                time.sleep(0.02)


def served(url: str) -> dict | None:
    try:
        answer = httpx.get(f"{url}/metadata", timeout=10)
    except httpx.HTTPError:
        return None
    return answer.json() if answer.status_code == 200 else None


def rollout_runs(stack: Stack) -> list[dict]:
    """Runs of the rollout flow of v2 on the stack's server, newest first."""
    runs = flow_runs(stack, "rollout")
    return [r for r in runs if r["parameters"].get("params", {}).get("version") == "2"]


def finished(runs: list[dict]) -> list[dict]:
    return [r for r in runs if r["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")]


@contextmanager
def service(stack: Stack, log_dir: Path, port: int) -> Iterator[subprocess.Popen]:
    """The real prediction service following MODEL's aliases and rollout every half second."""
    env = {
        **stack.env,
        "MLOPS_SERVE_LOG_DIR": str(log_dir),
        "MLOPS_SERVE_POLL_SECONDS": "0.5",
        "MLOPS_SERVE_LOG_FLUSH_SECONDS": "0.2",
    }
    command = [sys.executable, "-m", "serving", "--model", MODEL, "--port", str(port)]
    with (log_dir.parent / "service.log").open("ab") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(30)


def test_a_registered_challenger_is_rolled_out_by_the_trigger_and_promoted(
    deployed: Stack, tmp_path: Path
) -> None:
    stack = deployed
    log_dir = tmp_path / "prediction_log"
    log_dir.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    first = stack.run(
        "mlops", "train", "--config", str(rollout_config(tmp_path, "ridge", url, log_dir))
    )
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    client = MlflowClient(tracking_uri=stack.settings.mlflow_url)
    assert str(client.get_registered_model(MODEL).aliases.get("champion")) == "1"

    frame = pd.read_csv(BIKESHARE_CSV)
    features = [
        c for c in frame.columns if c not in ("bikers", "casual", "registered", "timestamp")
    ]
    load = Load(url, frame[features].head(500).to_dict("records"))
    thread = threading.Thread(target=load.run, daemon=True)
    with service(stack, log_dir, port):
        wait_for(lambda: (served(url) or {}).get("version") == "1", 180, "the service to load v1")
        thread.start()
        try:
            second = stack.run(
                "mlops", "train", "--config", str(rollout_config(tmp_path, "hgb", url, log_dir))
            )
            assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
            # the better challenger is registered, not promoted: the rollout decides
            model = client.get_registered_model(MODEL)
            assert str(model.aliases.get("champion")) == "1"
            assert str(model.aliases.get("challenger")) == "2"
            try:
                runs = wait_for(
                    lambda: finished(rollout_runs(stack)), 420, "the triggered rollout to end"
                )
            except AssertionError as exc:
                seen = [(r["name"], r["state_name"]) for r in rollout_runs(stack)]
                raise AssertionError(f"{exc}; rollout runs of v2: {seen}") from exc
            wait_for(lambda: (served(url) or {}).get("version") == "2", 60, "the service on v2")
        finally:
            load.stop.set()
            thread.join(30)

    assert len(runs) == 1, [(r["name"], r["state_name"]) for r in runs]
    run = runs[0]
    assert run["state_type"] == "COMPLETED", run["state"]
    params = run["parameters"]["params"]
    assert params["reason"].startswith("mlops.model.challenger-registered")
    assert params["config_path"].endswith("rollout-hgb.yaml")
    model = client.get_registered_model(MODEL)
    assert str(model.aliases.get("champion")) == "2"
    assert str(model.aliases.get("previous-champion")) == "1"
    assert load.statuses and set(load.statuses) == {200}
    assert "challenger" in load.arms  # canary answers reached clients, named by their arm
