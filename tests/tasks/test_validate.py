"""The validate tasks: the snapshot's validation artifact and the data gate in a run's log."""

from __future__ import annotations

import logging
from pathlib import Path
from uuid import UUID

import pandas as pd
import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterId,
    TaskRunFilter,
)
from prefect.client.schemas.sorting import ArtifactSort

from prefect_mlops.config import PipelineConfig, load_config
from prefect_mlops.errors import DataValidationError
from prefect_mlops.expectations.run import validate_frame
from prefect_mlops.io import write_parquet_atomic
from prefect_mlops.results import Snapshot, ValidationSummary
from tasks.validate import enforce_data_gate, validate_snapshot
from tests.prefect_mlops.expectations.helpers import ROOT, copy_gx, corrupt


@pytest.fixture(scope="module")
def config() -> PipelineConfig:
    return load_config(ROOT / "configs" / "bikeshare.yaml")


@pytest.fixture(scope="module")
def corrupted(bikeshare: pd.DataFrame) -> pd.DataFrame:
    return corrupt(bikeshare)


@pytest.fixture(scope="module")
def corrupted_run(
    corrupted: pd.DataFrame, config: PipelineConfig, tmp_path_factory: pytest.TempPathFactory
) -> ValidationSummary:
    settings = copy_gx(tmp_path_factory.mktemp("corrupted"))
    return validate_frame(corrupted, config, settings, "training", batch_id="corrupted-batch")


def test_warn_policy_logs_and_continues(
    corrupted_run: ValidationSummary, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        enforce_data_gate.fn(corrupted_run, "warn")
    assert "expect_column_values_to_not_be_null on 'bikers'" in caplog.text
    assert "policy warn" in caplog.text


def test_fail_policy_raises_listing_every_failed_expectation(
    corrupted_run: ValidationSummary,
) -> None:
    with pytest.raises(DataValidationError) as raised:
        enforce_data_gate.fn(corrupted_run, "fail")
    message = str(raised.value)
    for failure in corrupted_run.failed:
        assert failure.expectation in message
    assert "weathersit" in message
    assert corrupted_run.quarantine_uri is not None
    assert corrupted_run.quarantine_uri in message


def test_gate_passes_a_successful_validation() -> None:
    passed = ValidationSummary(success=True, checkpoint="x.training", evaluated=3)
    enforce_data_gate.fn(passed, "fail")


def test_validate_snapshot_publishes_the_outcome_as_an_artifact(
    corrupted: pd.DataFrame, config: PipelineConfig, tmp_path: Path
) -> None:
    gx_settings = copy_gx(tmp_path)
    path = gx_settings.snapshot_dir / "snap123.parquet"
    write_parquet_atomic(corrupted.astype({"temp": str}), path)
    snapshot = Snapshot(
        uri=str(path),
        fingerprint="snap123",
        rows=len(corrupted),
        columns=list(corrupted.columns),
        source="test",
    )

    @flow
    def validate_in_a_flow() -> ValidationSummary:
        return validate_snapshot(snapshot, config, gx_settings)

    state = validate_in_a_flow(return_state=True)
    summary = state.result()
    assert not summary.success
    assert summary.quarantine_uri is not None
    assert Path(summary.quarantine_uri).name == "snap123"
    markdown = artifact_of(state.state_details.flow_run_id, "validation-bikeshare")
    assert "Data validation **failed**" in markdown
    assert "| expect_column_values_to_be_in_set | weathersit |" in markdown
    assert "[Data Docs](file://" in markdown
    assert "Quarantined batch" in markdown


def artifact_of(flow_run_id: UUID | None, key: str) -> str:
    """The data of the artifact `key` created by one flow run (other tests share the server)."""
    # The sync client sends every parameter left out as null, which Prefect 3.8's server rejects
    # with a 422 (so does Artifact.get): spell them all out.
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
            task_run_filter=TaskRunFilter(),
            limit=10,
            offset=0,
            sort=ArtifactSort.UPDATED_DESC,
        )
    assert len(artifacts) == 1
    return str(artifacts[0].data)
