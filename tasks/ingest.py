"""Ingest task: freeze a CSV, Parquet or SQL source as a fingerprinted Parquet snapshot."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.runtime import task_run

from prefect_mlops.config import WindowConfig
from prefect_mlops.results import Snapshot
from prefect_mlops.settings import Settings
from prefect_mlops.snapshots import take_snapshot
from prefect_mlops.sources import Source
from tasks.logs import run_logger
from tasks.policies import IO_RETRIES, RELEASES_MEMORY


def _snapshot_run_name() -> str:
    parameters = task_run.parameters
    window = " (recent window)" if parameters.get("window") is not None else ""
    return f"snapshot {parameters['source'].describe()}{window}"


@task(**IO_RETRIES, **RELEASES_MEMORY, task_run_name=_snapshot_run_name)
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
    log = run_logger()
    snapshot = take_snapshot(source, snapshot_dir, window, settings, progress=log.info)
    log.info(
        "read %s rows x %d columns from %s, fingerprint %s",
        f"{snapshot.rows:,}",
        len(snapshot.columns),
        snapshot.source,
        snapshot.fingerprint,
    )
    return snapshot
