"""The recovery pass on what a SIGKILLed run leaves: real Prefect runs, a real dead process."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from prefect import flow, get_client, task
from prefect.states import Running

from prefect_mlops.lineage import FLOW_RUN_TAG
from prefect_mlops.recovery import process_identity
from prefect_mlops.registry import (
    CHALLENGER,
    CHAMPION,
    CHAMPION_MOVE_TAG,
    PENDING_ALIAS_TAG,
    PREVIOUS_CHAMPION,
    version_by_alias,
)
from prefect_mlops.settings import Settings
from tasks.recovery import PROCESS_TAG, recover

MODEL = "crash-demand"


@flow(name="killed-training")
def killed_flow() -> None:
    """Never runs: its runs are created in the state a killed process leaves."""


@task
def killed_task() -> None:
    """Never runs."""


def dead_identity() -> str:
    """`host:pid` of a process of this host that has exited."""
    done = subprocess.run([sys.executable, "-c", "pass"], check=True)
    assert done.returncode == 0
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return f"{socket.gethostname()}:{child.pid}"


def running_flow_run(identity: str) -> tuple[str, str]:
    """A Running flow run with a Running task run, recorded as run by `identity`."""
    with get_client(sync_client=True) as client:
        run = client.create_flow_run(killed_flow, state=Running())
        client.update_flow_run(run.id, tags=[f"{PROCESS_TAG}{identity}"])
        task_run = client.create_task_run(killed_task, run.id, "0", state=Running())
    return str(run.id), str(task_run.id)


def state_of(flow_run_id: str, task_run_id: str) -> tuple[str, str]:
    with get_client(sync_client=True) as client:
        flow_state = client.read_flow_run(flow_run_id).state
        task_state = client.read_task_run(task_run_id).state
    assert flow_state is not None and task_state is not None
    return flow_state.type.value, task_state.type.value


@pytest.fixture
def leftovers(settings: Settings, tmp_path: Path) -> dict[str, str]:
    """A dead run's leftovers in MLflow, and a live run's open MLflow run beside them."""
    dead, dead_task = running_flow_run(dead_identity())
    live, live_task = running_flow_run(process_identity())
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    parent = client.create_run("0", tags={FLOW_RUN_TAG: dead})
    candidate = client.create_run(
        "0", tags={FLOW_RUN_TAG: dead, "mlflow.parentRunId": parent.info.run_id}
    )
    live_run = client.create_run("0", tags={FLOW_RUN_TAG: live})
    client.create_registered_model(MODEL)
    run_id = parent.info.run_id
    for version in range(4):
        # v1 champion; v2 killed before its alias; v3 killed after it; v4 of the live run.
        owner = live if version == 3 else dead
        tags = {FLOW_RUN_TAG: owner} | ({PENDING_ALIAS_TAG: CHALLENGER} if version else {})
        client.create_model_version(MODEL, source=str(tmp_path), run_id=run_id, tags=tags)
    client.set_registered_model_alias(MODEL, CHAMPION, "1")
    client.set_registered_model_alias(MODEL, CHALLENGER, "3")
    # A champion move to v3 cut short after previous-champion was written.
    client.set_registered_model_tag(MODEL, CHAMPION_MOVE_TAG, json.dumps({"from": "1", "to": "3"}))
    client.set_registered_model_alias(MODEL, PREVIOUS_CHAMPION, "1")
    return {
        "dead": dead,
        "dead_task": dead_task,
        "live": live,
        "live_task": live_task,
        "parent": parent.info.run_id,
        "candidate": candidate.info.run_id,
        "live_run": live_run.info.run_id,
    }


def test_recovery_closes_what_a_killed_run_left_and_nothing_of_a_live_one(
    settings: Settings, leftovers: dict[str, str]
) -> None:
    report = recover(settings)

    assert state_of(leftovers["dead"], leftovers["dead_task"]) == ("CRASHED", "CRASHED")
    assert state_of(leftovers["live"], leftovers["live_task"]) == ("RUNNING", "RUNNING")
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    status = {key: client.get_run(leftovers[key]).info.status for key in ("parent", "candidate")}
    assert status == {"parent": "FAILED", "candidate": "FAILED"}
    assert client.get_run(leftovers["live_run"]).info.status == "RUNNING"
    versions = {str(v.version): v for v in client.search_model_versions(f"name = '{MODEL}'")}
    assert sorted(versions, key=int) == ["1", "3", "4"]  # v2 never got its alias: deleted
    assert PENDING_ALIAS_TAG not in versions["3"].tags  # v3 had it: completed
    assert versions["4"].tags[PENDING_ALIAS_TAG] == CHALLENGER  # its run still lives
    assert version_by_alias(client, MODEL, CHAMPION) == "3"
    assert version_by_alias(client, MODEL, PREVIOUS_CHAMPION) == "1"
    assert report.removed_versions == [f"{MODEL} v2"]
    assert any(leftovers["dead"] in line for line in report.crashed_flow_runs)


def test_a_second_pass_finds_nothing(settings: Settings, leftovers: dict[str, str]) -> None:
    recover(settings)
    assert recover(settings).lines() == ["nothing to recover"]
