"""The README's server path, driven as a user drives it: `mlops up`, deploy, run, inspect."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from prefect_mlops.stack import (
    StackError,
    StackSettings,
    port_in_use,
    recorded_pid,
    service_status,
    services,
    stack_down,
    stack_up,
)
from tests.conftest import BIKESHARE_CONFIG, BIKESHARE_CSV
from tests.system.conftest import BIN, ROOT, Stack, free_port

pytestmark = pytest.mark.system
MODEL = "bikeshare-demand"


def champion(stack: Stack) -> str | None:
    client = MlflowClient(tracking_uri=stack.settings.mlflow_url)
    aliases = client.get_registered_model(MODEL).aliases
    return str(aliases["champion"]) if "champion" in aliases else None


def test_up_twice_starts_no_twins(stack: Stack) -> None:
    again = stack_up(stack.settings, ROOT)
    assert all("already running" in line for line in again)


def test_port_taken_names_port_and_service(tmp_path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        settings = StackSettings(dir=tmp_path, prefect_port=port)
        with pytest.raises(StackError, match=f"port {port} needed by prefect-server"):
            stack_up(settings, ROOT)
    assert not list((tmp_path / "run").glob("*.pid"))


def test_every_deployment_of_prefect_yaml_exists(deployed: Stack) -> None:
    listing = deployed.run("prefect", "deployment", "ls")
    for name in (
        "training/train",
        "monitoring/monitor-bikeshare",
        "batch-scoring/score-bikeshare",
        "promotion/promote",
        "rollback/rollback",
    ):
        assert name in listing.stdout


def test_training_deployment_run_registers_champion(deployed: Stack) -> None:
    stack = deployed
    run = stack.run("prefect", "deployment", "run", "training/train", "--watch")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert champion(stack) == "1"


def test_deployment_run_on_bad_data_fails_at_validation(deployed: Stack, tmp_path) -> None:
    stack = deployed
    before = champion(stack)
    bad = pd.read_csv(BIKESHARE_CSV)
    bad["hum"] = bad["hum"].astype(object)
    bad.loc[:100, "hum"] = "humid"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    raw = yaml.safe_load(BIKESHARE_CONFIG.read_text())
    raw["source"]["path"] = str(tmp_path / "bad.csv")
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(raw))

    run = stack.run(
        "prefect",
        "deployment",
        "run",
        "training/train",
        "--watch",
        "--param",
        f'params={{"config_path": "{tmp_path / "bad.yaml"}"}}',
    )

    assert run.returncode != 0
    assert "DataValidationError" in run.stdout + run.stderr or "Failed" in run.stdout
    assert champion(stack) == before


def test_deploy_onto_missing_work_pool_names_it(stack: Stack, tmp_path) -> None:
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    for deployment in spec["deployments"]:
        deployment["work_pool"] = {"name": "no-such-pool"}
    (tmp_path / "prefect.yaml").write_text(yaml.safe_dump(spec))

    result = stack.run("mlops", "deploy", "--prefect-file", str(tmp_path / "prefect.yaml"))

    assert result.returncode == 1
    assert "work pool(s) ['no-such-pool'] do not exist" in result.stderr


def test_deploy_to_unreachable_server_names_it(stack: Stack) -> None:
    env = {**stack.env, "PREFECT_API_URL": "http://127.0.0.1:9/api"}
    result = subprocess.run(
        [str(BIN / "mlops"), "deploy"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "Prefect server at http://127.0.0.1:9/api is unreachable" in result.stderr


def wait_for_state(settings: StackSettings, name: str, *wanted: str) -> str:
    """The service's state once it is one of `wanted` (bounded: a kill takes effect at once)."""
    service = next(s for s in services(settings, ROOT) if s.name == name)
    for _ in range(100):
        state = service_status(settings, service).state
        if state in wanted:
            return state
        time.sleep(0.1)
    return state


def test_a_killed_mlflow_group_or_leader_is_restarted_by_up_and_down_leaves_no_listener(
    tmp_path,
) -> None:
    settings = StackSettings(
        dir=tmp_path / ".mlops",
        prefect_port=free_port(),
        mlflow_port=free_port(),
        serve_port=free_port(),
    )
    only = ["mlflow-server"]
    mlflow = next(s for s in services(settings, ROOT) if s.name == "mlflow-server")
    try:
        stack_up(settings, ROOT, only)
        for kill, left in ((os.killpg, "dead"), (os.kill, "orphaned")):
            pid = recorded_pid(settings, mlflow)
            assert pid is not None
            kill(pid, signal.SIGKILL)  # the whole group, then the launcher alone
            assert wait_for_state(settings, "mlflow-server", left) == left

            line = stack_up(settings, ROOT, only)[0]

            assert line.startswith("mlflow-server: restarted"), line
            assert ("found orphans" in line) == (left == "orphaned"), line
            assert service_status(settings, mlflow).healthy
        stack_down(settings, ROOT, only)
        assert not port_in_use(settings.host, settings.mlflow_port)
        assert service_status(settings, mlflow).state == "stopped"
    finally:
        stack_down(settings, ROOT, only)
