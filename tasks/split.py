"""Split task: cut a snapshot into train and holdout parts, stored beside it."""

from __future__ import annotations

from prefect import task

from prefect_mlops.config import PipelineConfig
from prefect_mlops.results import Snapshot, SplitRefs
from prefect_mlops.settings import Settings
from prefect_mlops.split import write_split
from tasks.logs import run_logger
from tasks.policies import RELEASES_MEMORY


@task(**RELEASES_MEMORY, task_run_name="split by {config.split.strategy}")
def split_snapshot(snapshot: Snapshot, config: PipelineConfig, settings: Settings) -> SplitRefs:
    """Split a snapshot (by time, or by a hash of each row's key) into train and holdout files."""
    split = write_split(snapshot, config, settings.artifact_store())
    run_logger().info(
        "split by %s: %s training rows, %s holdout rows",
        config.split.strategy,
        f"{split.train_rows:,}",
        f"{split.holdout_rows:,}",
    )
    return split
