"""Running: a frame through the config's training or scoring checkpoint, summarised."""

from __future__ import annotations

import pandas as pd
from great_expectations.checkpoint import Checkpoint
from great_expectations.data_context import FileDataContext

from prefect_mlops.config import PipelineConfig
from prefect_mlops.errors import DataValidationError
from prefect_mlops.expectations import gx
from prefect_mlops.expectations.quarantine import quarantine_batch
from prefect_mlops.expectations.suites import Purpose, checkpoint_name
from prefect_mlops.expectations.summary import summarize_result
from prefect_mlops.names import confined
from prefect_mlops.report_links import report_url
from prefect_mlops.results import ValidationSummary
from prefect_mlops.settings import Settings


def validate_frame(
    frame: pd.DataFrame,
    config: PipelineConfig,
    settings: Settings,
    purpose: Purpose,
    batch_id: str,
    opened: tuple[FileDataContext, Checkpoint] | None = None,
) -> ValidationSummary:
    """Run the training or scoring checkpoint on a frame; quarantine the batch when it fails.

    A schema change (a missing, extra or retyped column) is reported as failed expectations,
    never raised. A missing suite or checkpoint raises `DataValidationError` naming the fix.

    Args:
        opened: `open_checkpoint`'s answer for this config, settings and purpose, when the
            caller already has it (`background.open_checkpoint_in_background`).
    """
    context, checkpoint = opened or open_checkpoint(config, settings, purpose)
    always = config.validation.data_docs == "always"
    result = gx.run_checkpoint(
        context, checkpoint, frame, run_name=f"{purpose}-{batch_id}", report=always
    )
    docs_url = None
    if not result.success or always:
        docs_url = served(gx.build_data_docs(context, result), settings)
    summary = summarize_result(result, data_docs_url=docs_url)
    if not summary.success:
        folder = confined(settings.quarantine_dir, batch_id, field="batch_id")
        summary = quarantine_batch(frame, summary, folder)
    return summary


def served(docs_url: str | None, settings: Settings) -> str | None:
    """The Data Docs URL on the stack's report server when one is configured, else GX's own."""
    return (report_url(docs_url, settings) or docs_url) if docs_url else None


def open_checkpoint(
    config: PipelineConfig, settings: Settings, purpose: Purpose
) -> tuple[FileDataContext, Checkpoint]:
    """The GX context and the config's checkpoint; `DataValidationError` naming the fix."""
    name = checkpoint_name(config, purpose)
    if not gx.project_exists(settings):
        raise DataValidationError(_setup_hint(settings, name))
    context = gx.open_context(settings)
    try:
        return context, gx.load_checkpoint(context, name)
    except LookupError as exc:
        raise DataValidationError(f"{_setup_hint(settings, name)} ({exc})") from exc


def _setup_hint(settings: Settings, checkpoint: str) -> str:
    return (
        f"Great Expectations checkpoint {checkpoint!r} is not fully set up in {settings.gx_root}: "
        "run `mlops suite init --config <path>` with this pipeline's config to create its "
        "suites and checkpoints, then review and commit them"
    )
