"""What a pipeline config's suites and checkpoints are called."""

from __future__ import annotations

from typing import Literal

from prefect_mlops.config import PipelineConfig

Purpose = Literal["training", "scoring"]


def suite_names(config: PipelineConfig) -> tuple[str, str]:
    """Names of the features suite and the training suite of a config."""
    return f"{config.validation.suite}.features", f"{config.validation.suite}.training"


def checkpoint_name(config: PipelineConfig, purpose: Purpose) -> str:
    """Name of the checkpoint run for training or for scoring data."""
    return f"{config.validation.suite}.{purpose}"


def checkpoint_suites(config: PipelineConfig) -> dict[Purpose, list[str]]:
    """The suites each checkpoint runs: training data meets both, scoring data the features."""
    features_suite, training_suite = suite_names(config)
    return {"training": [features_suite, training_suite], "scoring": [features_suite]}
