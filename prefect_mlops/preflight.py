"""Checks of a pipeline config that need no data and no server: run before anything starts.

A YAML or field error surfaces when the config is parsed; these catch what parsing cannot
(estimator families and parameters, files that must exist) so that a run fails in a second
instead of after the ephemeral Prefect server, the snapshot and Great Expectations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from prefect_mlops.config import PipelineConfig, load_config
from prefect_mlops.errors import ConfigError
from prefect_mlops.estimators import check_candidates
from prefect_mlops.settings import Settings
from prefect_mlops.sources import CsvSource, ParquetSource

Purpose = Literal["training", "scoring"]


def pipeline_problems(config: PipelineConfig, settings: Settings, purpose: Purpose) -> list[str]:
    """Every problem found in a parsed config for a training or scoring/monitoring run."""
    problems = check_candidates(config)
    source = config.source
    if (
        purpose == "training"
        and isinstance(source, CsvSource | ParquetSource)
        and not Path(source.path).exists()
    ):
        problems.append(f"source.path: {source.kind} file {source.path} does not exist")
    checkpoint = settings.gx_root / "checkpoints" / f"{config.validation.suite}.{purpose}.json"
    if not checkpoint.is_file():
        problems.append(
            f"validation.suite: no Great Expectations checkpoint {checkpoint}; run "
            "`mlops suite init --config <this config>` and commit what it writes"
        )
    return problems


def check_pipeline(
    config: PipelineConfig, settings: Settings, purpose: Purpose, origin: str = "<config>"
) -> None:
    """Raise one ConfigError listing every problem of the config, or return quietly."""
    problems = pipeline_problems(config, settings, purpose)
    if problems:
        raise ConfigError(f"invalid pipeline config {origin}: " + "; ".join(problems))


def load_checked_config(
    path: str | Path, settings: Settings, purpose: Purpose = "training"
) -> PipelineConfig:
    """Parse a pipeline YAML and run every check that needs no data: the config a run may use."""
    config = load_config(path)
    check_pipeline(config, settings, purpose, origin=str(path))
    return config
