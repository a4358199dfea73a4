"""Checks of a pipeline config that need no data and no server: run before anything starts.

A YAML or field error surfaces when the config is parsed; these catch what parsing cannot
(estimator families and parameters, files that must exist) so that a run fails in a second
instead of after the ephemeral Prefect server, the snapshot and Great Expectations.
"""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path
from typing import Literal

from prefect_mlops.artifact_store import root_problems
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
    problems += root_problems(settings.artifact_root, settings.tracking_uri)
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


def server_problems(settings: Settings, timeout: float = 5.0) -> list[str]:
    """The servers this run would use that do not answer: the Prefect API (`PREFECT_API_URL`,
    when set; unset means a temporary server) and an HTTP MLflow tracking server.

    Asked before a flow starts, so an unreachable server is one line naming the URL and the
    setting, instead of Prefect's or MLflow's retries and a traceback minutes later."""
    checks = []
    prefect_url = os.environ.get("PREFECT_API_URL", "").rstrip("/")
    if prefect_url:
        checks.append(("PREFECT_API_URL", prefect_url, f"{prefect_url}/health"))
    if settings.tracking_uri.startswith(("http://", "https://")):
        tracking = settings.tracking_uri.rstrip("/")
        checks.append(("MLFLOW_TRACKING_URI", tracking, f"{tracking}/health"))
    problems = []
    for setting, url, health in checks:
        try:
            with urllib.request.urlopen(health, timeout=timeout) as answer:
                if answer.status >= 400:
                    problems.append(f"{setting}={url} answers {answer.status} at {health}")
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            problems.append(f"{setting}={url} does not answer ({reason})")
    return problems


def check_servers(settings: Settings) -> None:
    """Raise one ConfigError naming every configured server that does not answer."""
    problems = server_problems(settings)
    if problems:
        raise ConfigError(
            "; ".join(problems) + " (start the stack with `mlops up`, or unset PREFECT_API_URL "
            "to run on a temporary local Prefect server)"
        )
