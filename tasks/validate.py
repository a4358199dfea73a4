"""Validate: the Great Expectations checkpoint on every batch, its artifact and the data gate.

The suites, checkpoints and workarounds live in the core, `prefect_mlops.expectations`.
"""

from __future__ import annotations

import logging

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.context import FlowRunContext, TaskRunContext
from prefect.exceptions import MissingContextError
from prefect.logging import get_run_logger

from prefect_mlops.config import PipelineConfig
from prefect_mlops.expectations.gate import GatePolicy, check_data_gate
from prefect_mlops.expectations.run import validate_frame
from prefect_mlops.expectations.suites import Purpose
from prefect_mlops.expectations.summary import validation_markdown
from prefect_mlops.io import read_parquet
from prefect_mlops.names import artifact_key
from prefect_mlops.results import Snapshot, ValidationSummary
from prefect_mlops.settings import Settings
from tasks.policies import IO_RETRIES, RELEASES_MEMORY


@task(**IO_RETRIES, **RELEASES_MEMORY)
def validate_snapshot(
    snapshot: Snapshot,
    config: PipelineConfig,
    settings: Settings,
    purpose: Purpose = "training",
) -> ValidationSummary:
    """Validate a snapshot with Great Expectations and publish the outcome as an artifact."""
    frame = read_parquet(snapshot.uri)
    summary = validate_frame(frame, config, settings, purpose, batch_id=snapshot.fingerprint)
    _publish(summary, config, purpose, snapshot)
    return summary


@task
def enforce_data_gate(summary: ValidationSummary, policy: GatePolicy) -> None:
    """The data gate: a failed validation stops the run (policy fail) or is logged (warn)."""
    warning = check_data_gate(summary, policy)
    if warning is not None:
        _run_logger().warning(warning)


def _publish(
    summary: ValidationSummary, config: PipelineConfig, purpose: Purpose, snapshot: Snapshot
) -> None:
    """A markdown artifact in the Prefect UI; skipped when not inside a flow or task run."""
    if FlowRunContext.get() is None and TaskRunContext.get() is None:
        return
    create_markdown_artifact(
        key=artifact_key("validation", config.name),
        markdown=validation_markdown(summary, purpose, snapshot),
        description=f"Great Expectations {purpose} validation of {config.name}",
    )


def _run_logger() -> logging.Logger | logging.LoggerAdapter:
    try:
        return get_run_logger()
    except MissingContextError:  # called outside a run, e.g. `.fn` in a unit test
        return logging.getLogger(__name__)
