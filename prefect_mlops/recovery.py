"""Crash recovery: what a killed run leaves behind, found and closed (no Prefect here).

A run killed with SIGKILL, by the OOM killer or with its machine runs no hook. It can leave:
its Prefect flow run and task runs *Running*; its parent MLflow run and a candidate run
*RUNNING*; a registered version that never got its `challenger` alias (tagged
`mlops.pending_alias`); a champion move half done (journalled on the registered model); the
champion lock taken until its lease expires. tasks/recovery.py decides which flow runs are
dead (their process is gone, or they went silent) and passes `closed` to the functions here,
which close what those runs left.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from datetime import datetime, timedelta

from mlflow.entities import RunStatus
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from pydantic import BaseModel, Field

from prefect_mlops.lineage import FLOW_RUN_TAG
from prefect_mlops.registry import (
    CHAMPION_MOVE_TAG,
    PENDING_ALIAS_TAG,
    ChampionLock,
    complete_champion_move,
)
from prefect_mlops.tracking import open_runs_by_flow_run


class RecoveryReport(BaseModel):
    """What one recovery pass closed, removed or completed."""

    crashed_flow_runs: list[str] = Field(default_factory=list)
    failed_mlflow_runs: list[str] = Field(default_factory=list)
    removed_versions: list[str] = Field(default_factory=list)
    completed_versions: list[str] = Field(default_factory=list)
    completed_moves: list[str] = Field(default_factory=list)
    released_leases: list[str] = Field(default_factory=list)

    def lines(self) -> list[str]:
        """One line per kind of repair, for the CLI and the run's log."""
        labels = {
            "crashed_flow_runs": "flow runs marked Crashed",
            "failed_mlflow_runs": "MLflow runs marked FAILED",
            "removed_versions": "half-made versions deleted",
            "completed_versions": "versions completed (alias was set)",
            "completed_moves": "champion moves completed",
            "released_leases": "expired lock leases released",
        }
        found = [
            f"{label}: {', '.join(getattr(self, key))}"
            for key, label in labels.items()
            if getattr(self, key)
        ]
        return found or ["nothing to recover"]


def process_identity() -> str:
    """This process as `host:pid`, the format Prefect's process worker records too."""
    return f"{socket.gethostname()}:{os.getpid()}"


def process_gone(identity: str | None) -> bool | None:
    """True when the `host:pid` process is on this host and no longer exists, False when it
    does; None when it cannot be told from here (another host, nothing recorded)."""
    if not identity or ":" not in identity:
        return None
    host, _, pid = identity.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    return False


def went_silent(last_change: datetime, now: datetime, after_seconds: float) -> bool:
    """A run whose last state change is older than the silence bound is taken for dead."""
    return now - last_change > timedelta(seconds=after_seconds)


def fail_orphaned_runs(client: MlflowClient, closed: Callable[[str], bool]) -> list[str]:
    """Mark FAILED every RUNNING MLflow run whose Prefect flow run has ended; their ids."""
    failed: list[str] = []
    for flow_run_id, run_ids in open_runs_by_flow_run(client).items():
        if not closed(flow_run_id):
            continue
        for run_id in run_ids:
            client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
            failed.append(run_id)
    return failed


def heal_versions(
    client: MlflowClient, closed: Callable[[str], bool], report: RecoveryReport
) -> None:
    """Versions still `mlops.pending_alias` after their run ended: completed when the alias
    is there (only the tag's removal was lost), deleted when it is not (nothing points at it)."""
    for version in client.search_model_versions(f"tags.`{PENDING_ALIAS_TAG}` != ''"):
        if not closed(version.tags.get(FLOW_RUN_TAG, "none")):
            continue
        try:
            _heal_version(client, version.name, str(version.version), report)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            # Gone already: another flow's recovery pass got there first.


def _heal_version(client: MlflowClient, name: str, version: str, report: RecoveryReport) -> None:
    current = client.get_model_version(name, version)
    alias = current.tags[PENDING_ALIAS_TAG]
    if alias in current.aliases:
        client.delete_model_version_tag(name, version, PENDING_ALIAS_TAG)
        report.completed_versions.append(f"{name} v{version}")
    else:
        client.delete_model_version(name, version)
        report.removed_versions.append(f"{name} v{version}")


def heal_champion_moves(client: MlflowClient, lock: ChampionLock, report: RecoveryReport) -> None:
    """Finish every journalled champion move, each under its model's lock (a live mover holds
    the lock for the whole move, so a journal seen inside the lock belongs to a dead one)."""
    for model in client.search_registered_models(f"tags.`{CHAMPION_MOVE_TAG}` != ''"):
        with lock(model.name):
            try:
                moved_to = complete_champion_move(client, model.name)
            except MlflowException:
                # The move's target was deleted meanwhile: there is nothing left to finish.
                client.delete_registered_model_tag(model.name, CHAMPION_MOVE_TAG)
                continue
        if moved_to is not None:
            report.completed_moves.append(f"{model.name} champion -> v{moved_to}")


def heal_tracking_and_registry(
    client: MlflowClient, closed: Callable[[str], bool], lock: ChampionLock, report: RecoveryReport
) -> RecoveryReport:
    """Close what ended flow runs left in MLflow: runs, half-made versions, champion moves."""
    report.failed_mlflow_runs.extend(fail_orphaned_runs(client, closed))
    heal_versions(client, closed, report)
    heal_champion_moves(client, lock, report)
    return report
