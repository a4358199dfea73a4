"""The closed loop on a real stack: serve, drift, event, triggered retraining, new champion served.

Driven through deployments as a user would: the training and monitoring runs are
`prefect deployment run`s executed by the worker; the retraining run is started by the
`retrain-on-drift` trigger declared in prefect.yaml, nothing else.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from deployments.replay import replay, wait_for_log
from tests.conftest import BIKESHARE_CONFIG, BIKESHARE_CSV
from tests.system.conftest import LOOP_MODEL, Stack, flow_runs, wait_for

pytestmark = pytest.mark.system


def months(frame: pd.DataFrame, first: int, last: int) -> pd.DataFrame:
    month = pd.to_datetime(frame["timestamp"]).dt.month
    return frame[(month >= first) & (month <= last)]


def loop_config(workdir: Path, landing: Path) -> Path:
    raw = yaml.safe_load(BIKESHARE_CONFIG.read_text())
    raw.update(
        name="loop",
        registered_model_name=LOOP_MODEL,
        source={"kind": "csv", "path": str(landing)},
        training_window={"time_column": "timestamp", "days": 92},
        tuning={"cv_folds": 2, "max_configs_per_candidate": 1},
        candidates=[
            {"name": "ridge", "estimator": "linear", "search_space": {"alpha": [1.0]}},
            {"name": "hgb", "estimator": "hist_gradient_boosting", "params": {"max_iter": 60}},
        ],
    )
    raw["gate"]["thresholds"] = {}
    path = workdir / "loop.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def served_version(url: str) -> str | None:
    """The version the service answers with, or None while it has no model loaded."""
    answer = httpx.get(f"{url}/metadata", timeout=10)
    return str(answer.json()["version"]) if answer.status_code == 200 else None


def model_events(stack: Stack) -> dict[str, dict]:
    """Monitoring events about the loop's model that reached the Prefect server, by name."""
    body = {"filter": {"event": {"prefix": ["mlops.model."]}}, "limit": 50}
    found = httpx.post(f"{stack.settings.prefect_api_url}/events/filter", json=body, timeout=10)
    found.raise_for_status()
    return {
        e["event"]: e["payload"]
        for e in found.json()["events"]
        if e["resource"]["prefect.resource.id"] == f"mlops.model.{LOOP_MODEL}"
    }


def training_runs(stack: Stack) -> list[dict]:
    """Every run of the training flow on the stack's server (not the test harness), newest first."""
    return flow_runs(stack, "training")


def triggered_training_runs(stack: Stack) -> list[dict]:
    """Training runs the retrain-on-drift trigger started (it asks for the recent window)."""
    return [
        run
        for run in training_runs(stack)
        if run["parameters"].get("params", {}).get("window") == "recent"
    ]


def test_drift_event_retrains_and_the_service_follows(deployed: Stack, tmp_path: Path) -> None:
    stack = deployed
    year = pd.read_csv(BIKESHARE_CSV)
    landing = tmp_path / "landing.csv"
    months(year, 1, 3).to_csv(landing, index=False)
    config = loop_config(tmp_path, landing)
    params = json.dumps({"config_path": str(config)})

    first = stack.run(
        "prefect", "deployment", "run", "training/train", "--watch", "--param", f"params={params}"
    )
    assert first.returncode == 0, first.stdout[-3000:]
    url = stack.settings.serve_url
    wait_for(lambda: served_version(url) == "1", 120, "the service to load v1")

    summer = months(year, 7, 9)
    sent = replay(
        url,
        summer,
        [c for c in summer.columns if c not in ("bikers", "casual", "registered", "timestamp")],
        "bikers",
    )
    wait_for_log(Path(stack.env["MLOPS_ARTIFACT_ROOT"]) / "prediction_log", sent)
    pd.concat([months(year, 1, 3), summer]).to_csv(landing, index=False)  # new data landed

    monitor_params = json.dumps({"config_path": str(config), "window": {"hours": 24}})
    monitoring = stack.run(
        "prefect",
        "deployment",
        "run",
        "monitoring/monitor-bikeshare",
        "--watch",
        "--param",
        f"params={monitor_params}",
    )
    assert monitoring.returncode == 0, monitoring.stdout[-3000:]

    events = model_events(stack)
    assert {"mlops.model.drift-detected", "mlops.model.performance-degraded"} & set(events), (
        f"monitoring emitted {events}; its output: {monitoring.stdout[-2000:]}"
    )
    try:
        runs = wait_for(
            lambda: triggered_training_runs(stack), 180, "the trigger to start training"
        )
    except AssertionError as exc:
        seen = [(r["name"], r["state_name"], r["parameters"]) for r in training_runs(stack)]
        raise AssertionError(f"{exc}; training runs: {seen}") from exc
    assert len(runs) == 1
    triggered = runs[0]["parameters"]["params"]
    assert triggered["reason"].startswith("mlops.model.")
    assert triggered["config_path"] == str(config)
    client = MlflowClient(tracking_uri=stack.settings.mlflow_url)
    wait_for(
        lambda: str(client.get_registered_model(LOOP_MODEL).aliases.get("champion")) == "2",
        300,
        "the retrained model to become champion",
    )
    wait_for(lambda: served_version(url) == "2", 120, "the service to swap to v2")
