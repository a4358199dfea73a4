"""What the Prefect UI shows of a training run: names, domain log lines, progress and links, and
a failed gate's reason as the state message. One small run on the test server, read back through
the client as the UI reads it."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.sorting import ArtifactSort, LogSort, TaskRunSort
from prefect.logging.handlers import APILogHandler

from flows.training import TrainingParams, describe_training, training_flow
from prefect_mlops.config import PipelineConfig
from prefect_mlops.errors import ModelGateError
from tests.conftest import ROOT, fast_config_dict, write_config


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path) -> Iterator[UUID]:
    """One small training run on its own MLflow store and GX copy; its flow run id."""
    tmp = tmp_path_factory.mktemp("story")
    shutil.copy(mlflow_template, tmp / "mlflow.db")
    shutil.copytree(
        ROOT / "great_expectations", tmp / "gx", ignore=shutil.ignore_patterns("uncommitted")
    )
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp / 'mlflow.db'}")
        env.setenv("MLOPS_ARTIFACT_ROOT", str(tmp / "artifacts"))
        env.setenv("MLOPS_GX_ROOT", str(tmp / "gx"))
        # Two chunks: the snapshot's validation reports its progress too.
        env.setenv("MLOPS_VALIDATION_CHUNK_ROWS", "5000")
        raw = fast_config_dict()
        raw["validation"]["data_docs"] = "always"  # a passing run links its report too
        config = write_config(tmp / "story.yaml", raw)
        state = training_flow(TrainingParams(config_path=str(config)), return_state=True)
        assert state.is_completed(), state.message
        yield state.state_details.flow_run_id


def task_run_names(flow_run_id: UUID) -> list[str]:
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
            task_run_filter=None,
            deployment_filter=None,
            sort=TaskRunSort.EXPECTED_START_TIME_ASC,
            limit=200,
            offset=0,
        )
    return [run.name for run in runs]


def log_lines(flow_run_id: UUID) -> list[str]:
    """The run's log as the server holds it, once Prefect's batching log worker has sent it all
    (the last tasks' lines may still be queued when the flow returns)."""
    APILogHandler().flush()
    seen: list[str] = []
    deadline = time.monotonic() + 30
    while True:
        with get_client(sync_client=True) as client:
            logs = client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])),
                limit=200,
                offset=0,
                sort=LogSort.TIMESTAMP_ASC,
            )
        lines = [log.message for log in logs]
        if lines == seen or time.monotonic() > deadline:
            return lines
        seen = lines
        time.sleep(1)


def artifacts(flow_run_id: UUID) -> dict[str, Any]:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            # Not joined on task runs: the flow's own artifacts have none.
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])),
            flow_run_filter=None,
            task_run_filter=None,
            limit=100,
            offset=0,
            sort=ArtifactSort.CREATED_DESC,
        )
    return {a.key: a for a in found if a.key}


def test_flow_and_task_runs_are_named_after_what_they_do(story: UUID) -> None:
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(story).name == "train bikeshare-demand (manual)"
    names = task_run_names(story)
    assert "validate bikeshare (training)" in names
    assert "cv ridge alpha=1" in names
    assert "cv hist_gradient_boosting max_iter=60" in names
    assert "refit hist_gradient_boosting max_iter=60" in names
    assert {"split by time", "model gate", "enforce model gate", "data gate (policy fail)"} <= set(
        names
    )


def test_the_log_tells_each_stage_and_not_the_process_hooks(story: UUID) -> None:
    lines = log_lines(story)
    text = "\n".join(lines)
    assert "read 8,645 rows x 16 columns" in text and "fingerprint " in text
    assert "validation of 8,645 rows" in text and "expectations passed" in text
    assert "2 candidates planned: ridge alpha=1; hist_gradient_boosting max_iter=60" in text
    assert "best candidate hist_gradient_boosting max_iter=60: CV rmse" in text
    assert "model gate: BLESSED" in text
    assert "registered bikeshare-demand v1 (aliases: challenger, champion); promoted" in text
    assert not [line for line in lines if "hook" in line.lower()]


def test_long_work_has_progress_and_the_run_links_its_report_and_mlflow_run(story: UUID) -> None:
    found = artifacts(story)
    for key in ("candidates-bikeshare", "refit-bikeshare", "validation-progress-bikeshare"):
        assert found[key].type == "progress", key
        assert found[key].data == 100.0, key
    assert "2 candidates" in found["candidates-bikeshare"].description
    # A local SQLite store has no UI to link: the run id and store are said instead.
    assert found["mlflow-bikeshare"].type == "markdown"
    assert "run `" in str(found["mlflow-bikeshare"].data)
    assert found["data-docs-bikeshare"].type == "markdown"  # Prefect 3.8 stores links so
    assert str(found["data-docs-bikeshare"].data).endswith(".html)")  # [text](url)


def test_with_a_tracking_server_the_run_and_version_are_links_to_its_ui(
    fast_config: PipelineConfig,
) -> None:
    from prefect import flow

    from prefect_mlops.context import TrainingContext
    from prefect_mlops.lineage import RunOrigin
    from prefect_mlops.results import ModelVersionRef, Snapshot, TrainingResult, ValidationSummary
    from prefect_mlops.settings import Settings
    from tasks.report import publish_links

    ctx = TrainingContext(
        config=fast_config,
        # (tracking_uri is read from MLFLOW_TRACKING_URI by its alias: set it on a copy)
        settings=Settings().model_copy(update={"tracking_uri": "http://127.0.0.1:5000"}),
        origin=RunOrigin(),
    )
    result = TrainingResult(
        snapshot=Snapshot(uri="s.parquet", fingerprint="f", rows=1, columns=["a"], source="s"),
        validation=ValidationSummary(success=True, checkpoint="c", evaluated=1),
        model_version=ModelVersionRef(name="bikeshare-demand", version="3", aliases=["champion"]),
        promoted=True,
        mlflow_run_id="abc123",
    )

    @flow
    def links() -> None:
        publish_links(ctx, result)

    state = links(return_state=True)
    found = artifacts(state.state_details.flow_run_id)
    assert found["mlflow-run-bikeshare"].data == (
        "[MLflow run abc123](http://127.0.0.1:5000/#/runs/abc123)"
    )
    assert "(http://127.0.0.1:5000/#/models/bikeshare-demand/versions/3)" in str(
        found["model-version-bikeshare"].data
    )
    assert "mlflow-bikeshare" not in found  # no note when there is a UI to link


def test_summary_numbers_are_rounded(story: UUID) -> None:
    import re

    summary = str(artifacts(story)["training-bikeshare"].data)
    assert "BLESSED" in summary
    assert not re.findall(r"\d+\.\d{5,}", summary)


def test_a_rejected_gate_fails_the_run_with_the_rule_as_its_state_message(
    settings, tmp_path: Path
) -> None:
    raw = fast_config_dict(gate={"primary_metric": "rmse", "thresholds": {"r2": {"min": 0.999}}})
    config = write_config(tmp_path / "strict.yaml", raw)
    state = training_flow(TrainingParams(config_path=str(config)), return_state=True)

    assert state.is_failed()
    with get_client(sync_client=True) as client:
        message = client.read_flow_run(state.state_details.flow_run_id).state.message
    assert message.startswith("model not blessed, nothing registered: r2 >= 0.999 (r2 = ")
    with pytest.raises(ModelGateError):  # callers still get the project's exception
        state.result()


def test_a_retrain_is_named_after_the_event_that_started_it(fast_config_path: Path) -> None:
    drift = TrainingParams(
        config_path=str(fast_config_path),
        window="recent",
        reason="mlops.model.drift-detected 5f0c1e2a",
    )
    assert describe_training(drift) == "train bikeshare-demand (drift retrain, recent window)"
    missing = TrainingParams(config_path="configs/nowhere.yaml")
    assert describe_training(missing) == "train nowhere (manual)"
