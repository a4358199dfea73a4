"""Configure: read and check the pipeline config a flow run was asked to use."""

from __future__ import annotations

from prefect import task

from prefect_mlops.config import PipelineConfig
from prefect_mlops.preflight import Purpose, load_checked_config
from prefect_mlops.settings import Settings


@task(task_run_name="config {path} ({purpose})")
def load_pipeline_config(
    path: str, settings: Settings | None = None, purpose: Purpose = "scoring"
) -> PipelineConfig:
    """Load the pipeline YAML and check it (estimators, files, suites) before any work starts."""
    return load_checked_config(path, settings or Settings(), purpose)
