"""Split task: cut a snapshot into train and holdout parts, written beside it."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from prefect_mlops.config import SplitConfig
from prefect_mlops.results import Snapshot, SplitRefs
from prefect_mlops.split import write_split
from tasks.policies import RELEASES_MEMORY


@task(**RELEASES_MEMORY)
def split_snapshot(
    snapshot: Snapshot, split: SplitConfig, target: str, seed: int, split_dir: Path
) -> SplitRefs:
    """Split a snapshot and write train and holdout Parquet files keyed by data and split."""
    return write_split(snapshot, split, target, seed, split_dir)
