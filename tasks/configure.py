"""Configure: read the pipeline config a flow run was asked to use."""

from __future__ import annotations

from prefect import task

from prefect_mlops.config import PipelineConfig, load_config


@task
def load_pipeline_config(path: str) -> PipelineConfig:
    """Load and validate the pipeline YAML named by the flow parameters."""
    return load_config(path)
