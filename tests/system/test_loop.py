"""The closed loop on a real stack: serve, drift, event, triggered retraining, new champion served.

Driven through deployments as a user would: the training and monitoring runs are
`prefect deployment run`s executed by the worker; the retraining run is started by the
`retrain-on-drift` trigger declared in prefect.yaml, nothing else.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName, FlowRunFilter
from prefect.client.schemas.sorting import FlowRunSort

from prefect_mlops.simulate import replay, wait_for_log
from tests.conftest import BIKESHARE_CONFIG, BIKESHARE_CSV
from tests.system.conftest import LOOP_MODEL, Stack

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


def served_version(url: str) -> str:
    return str(httpx.get(f"{url}/metadata", timeout=10).json()["version"])


def wait_for(predicate, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(2)
    raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")


def triggered_training_runs(stack: Stack) -> list:
    """Training runs whose parameters say an event started them."""
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(),
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["train"])),
            sort=FlowRunSort.EXPECTED_START_TIME_DESC,
            limit=20,
            offset=0,
        )
    return [
        r
        for r in runs
        if str(r.parameters.get("params", {}).get("reason", "")).startswith("mlops.model.")
    ]


def test_drift_event_retrains_and_the_service_follows(stack: Stack, tmp_path: Path) -> None:
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
        [c for c in summer.columns if c not in ("bikers", "casual", "registered")],
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

    runs = wait_for(lambda: triggered_training_runs(stack), 180, "the trigger to start training")
    assert len(runs) == 1
    assert runs[0].parameters["params"]["window"] == "recent"
    assert runs[0].parameters["params"]["config_path"] == str(config)
    client = MlflowClient(tracking_uri=stack.settings.mlflow_url)
    wait_for(
        lambda: client.get_registered_model(LOOP_MODEL).aliases.get("champion") == 2,
        300,
        "the retrained model to become champion",
    )
    wait_for(lambda: served_version(url) == "2", 120, "the service to swap to v2")
