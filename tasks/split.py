"""Split task: cut a snapshot into train and holdout parts, written beside it."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from prefect_mlops.config import PipelineConfig
from prefect_mlops.results import Snapshot, SplitRefs
from prefect_mlops.split import write_split
from tasks.policies import RELEASES_MEMORY


@task(**RELEASES_MEMORY)
def split_snapshot(snapshot: Snapshot, config: PipelineConfig, split_dir: Path) -> SplitRefs:
    """Split a snapshot (by time, or by a hash of each row's key) into train and holdout files."""
    return write_split(snapshot, config, split_dir)
