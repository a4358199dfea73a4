"""Ingest task: freeze a CSV, Parquet or SQL source as a fingerprinted Parquet snapshot."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from prefect_mlops.config import WindowConfig
from prefect_mlops.results import Snapshot
from prefect_mlops.settings import Settings
from prefect_mlops.snapshots import take_snapshot
from prefect_mlops.sources import Source
from tasks.logs import run_logger
from tasks.policies import IO_RETRIES, RELEASES_MEMORY


@task(**IO_RETRIES, **RELEASES_MEMORY)
def snapshot_source(
    source: Source,
    snapshot_dir: Path,
    window: WindowConfig | None = None,
    settings: Settings | None = None,
) -> Snapshot:
    """Freeze the source (only its recent window, if given) as a fingerprinted snapshot.

    Args:
        settings: the read limits of sources read whole; the environment's when not given.
    """
    return take_snapshot(source, snapshot_dir, window, settings, progress=run_logger().info)
