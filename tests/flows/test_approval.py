"""Human approval: the training run pauses in Prefect until a reviewer answers, or times out."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from uuid import UUID

from mlflow.tracking import MlflowClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.flow_runs import resume_flow_run

from flows.training import TrainingParams, training_flow
from prefect_mlops.settings import Settings
from tests.conftest import fast_config_dict, write_config

MODEL = "bikeshare-demand"


def approval_config(tmp_path: Path, timeout_minutes: float) -> Path:
    raw = fast_config_dict(approval={"required": True, "timeout_minutes": timeout_minutes})
    return write_config(tmp_path / "approval.yaml", raw)


def wait_for_paused_run(deadline_seconds: float = 180) -> UUID:
    paused = FlowRunFilter(
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))
    )
    deadline = time.monotonic() + deadline_seconds
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(
                flow_run_filter=paused, sort=FlowRunSort.START_TIME_DESC, limit=1, offset=0
            )
            if runs:
                return runs[0].id
            time.sleep(1)
    raise AssertionError("no training run paused for approval")


def test_approved_challenger_becomes_champion(settings: Settings, tmp_path: Path) -> None:
    config_path = approval_config(tmp_path, timeout_minutes=5)
    outcome: dict = {}
    worker = threading.Thread(
        target=lambda: outcome.update(
            result=training_flow(TrainingParams(config_path=str(config_path)))
        )
    )
    worker.start()
    resume_flow_run(wait_for_paused_run(), run_input={"approve": True, "comment": "looks good"})
    worker.join(timeout=180)

    assert outcome["result"].promoted
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    assert client.get_registered_model(MODEL).aliases == {"challenger": 1, "champion": 1}
    reason = client.get_model_version(MODEL, "1").tags["promotion_reason"]
    assert "approved by a reviewer (looks good)" in reason


def test_unanswered_approval_times_out_as_rejection(settings: Settings, tmp_path: Path) -> None:
    config_path = approval_config(tmp_path, timeout_minutes=0.05)

    result = training_flow(TrainingParams(config_path=str(config_path)))

    assert not result.promoted
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    assert client.get_registered_model(MODEL).aliases == {"challenger": 1}
