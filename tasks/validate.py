"""Validate: the Great Expectations checkpoint on every batch, its artifact and the data gate.

The suites, checkpoints and workarounds live in the core, `prefect_mlops.expectations`.
"""

from __future__ import annotations

import math

import pyarrow.parquet as pq
from prefect import task
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.context import FlowRunContext, TaskRunContext

from prefect_mlops.config import PipelineConfig
from prefect_mlops.expectations.chunked import validate_snapshot_file
from prefect_mlops.expectations.gate import GatePolicy, check_data_gate
from prefect_mlops.expectations.suites import Purpose
from prefect_mlops.expectations.summary import validation_markdown
from prefect_mlops.names import artifact_key
from prefect_mlops.results import Snapshot, ValidationSummary
from prefect_mlops.settings import Settings
from tasks.logs import run_logger
from tasks.policies import IO_RETRIES, RELEASES_MEMORY
from tasks.progress import Progress


@task(
    **IO_RETRIES, **RELEASES_MEMORY, task_run_name="validate {config.validation.suite} ({purpose})"
)
def validate_snapshot(
    snapshot: Snapshot,
    config: PipelineConfig,
    settings: Settings,
    purpose: Purpose = "training",
) -> ValidationSummary:
    """Validate a snapshot with Great Expectations and publish the outcome as an artifact.

    A snapshot above `settings.validation_chunk_rows` rows is validated chunk by chunk.
    """
    log = run_logger()
    chunks = math.ceil(pq.read_metadata(snapshot.uri).num_rows / settings.validation_chunk_rows)
    progress = (
        Progress(artifact_key("validation-progress", config.name), chunks, "validation")
        if chunks > 1
        else None
    )
    done = 0

    def report(line: str) -> None:  # called once per validated chunk
        nonlocal done
        done += 1
        log.info(line)
        if progress is not None:
            progress.update(done, f"{done} of {chunks} chunks validated: {line}")

    summary = validate_snapshot_file(
        snapshot.uri, config, settings, purpose, snapshot.fingerprint, report
    )
    log.info(
        "validation of %s rows (%s): %s",
        f"{snapshot.rows:,}",
        snapshot.fingerprint,
        summary.describe().replace("\n", " "),
    )
    _publish(summary, config, purpose, snapshot)
    return summary


@task(task_run_name="data gate (policy {policy})")
def enforce_data_gate(summary: ValidationSummary, policy: GatePolicy) -> None:
    """The data gate: a failed validation stops the run (policy fail) or is logged (warn)."""
    warning = check_data_gate(summary, policy)
    if warning is not None:
        run_logger().warning(warning)


def _publish(
    summary: ValidationSummary, config: PipelineConfig, purpose: Purpose, snapshot: Snapshot
) -> None:
    """A markdown artifact in the Prefect UI; skipped when not inside a flow or task run."""
    if FlowRunContext.get() is None and TaskRunContext.get() is None:
        return
    if summary.data_docs_url:  # a failed batch's report, the first thing a person opens
        create_link_artifact(
            summary.data_docs_url,
            link_text=f"Data Docs of {summary.checkpoint}",
            key=artifact_key("data-docs", config.name),
            description=f"Great Expectations report of this {purpose} validation",
        )
    create_markdown_artifact(
        key=artifact_key("validation", config.name),
        markdown=validation_markdown(summary, purpose, snapshot),
        description=f"Great Expectations {purpose} validation of {config.name}",
    )
