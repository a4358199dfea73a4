"""Artifact tasks: put what a run wrote on this host into the artifact store, named by URI."""

from __future__ import annotations

from prefect import task

from prefect_mlops.artifact_store import publish_snapshot
from prefect_mlops.results import Snapshot
from prefect_mlops.settings import Settings
from tasks.logs import run_logger
from tasks.policies import IO_RETRIES


@task(**IO_RETRIES, task_run_name="store snapshot {snapshot.fingerprint}")
def store_snapshot(snapshot: Snapshot, settings: Settings) -> Snapshot:
    """Put a snapshot in the artifact store; the snapshot returned names it by its URI there."""
    stored = publish_snapshot(snapshot, settings.artifact_store())
    if stored.uri != snapshot.uri:
        run_logger().info("snapshot %s stored as %s", snapshot.fingerprint, stored.uri)
    return stored
