"""Recovery tasks: every flow's first step finds runs that died without a word and closes them.

A flow run counts as dead when the process recorded on it (tag `mlops.process:host:pid`, which
`record_process` adds when the run starts) is gone from this host, or, when that cannot be
checked here (another host, nothing recorded), when neither it nor any of its task runs changed
state for `MLOPS_CRASH_AFTER_SECONDS`. Dead runs are marked Crashed with their running task
runs; prefect_mlops.recovery then closes what they left in MLflow. A Prefect server can also
crash silent deployment runs itself (README, "Crashes, races and outages").
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from uuid import UUID

from prefect import get_client, get_run_logger, task
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
    TaskRunFilter,
    TaskRunFilterFlowRunId,
    TaskRunFilterState,
    TaskRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType, TaskRun
from prefect.exceptions import ObjectNotFound
from prefect.runtime import flow_run as current_run
from prefect.settings import get_current_settings
from prefect.states import Crashed

from prefect_mlops.recovery import (
    RecoveryReport,
    heal_tracking_and_registry,
    process_gone,
    process_identity,
    went_silent,
)
from prefect_mlops.settings import Settings
from prefect_mlops.tracking import check_tracking_server, mlflow_client
from tasks.locks import champion_lock

FILESYSTEM_LEASES = "prefect.server.concurrency.lease_storage.filesystem"
PROCESS_TAG = "mlops.process:"


@task(task_run_name="recover crashed runs")
def recover_crashed_runs(settings: Settings) -> RecoveryReport:
    """Record this run's process, then close what runs that died (SIGKILL, OOM) left behind."""
    check_tracking_server(settings)  # fail in seconds, naming the server, when it is down
    me = current_run.get_id()
    with get_client(sync_client=True) as client:
        if me is not None:
            record_process(client, UUID(me))
    report = recover(settings, exclude=me)
    for line in report.lines():
        get_run_logger().info("recovery: %s", line)
    return report


def record_process(client: SyncPrefectClient, flow_run_id: UUID) -> None:
    """Tag this run's flow run with `mlops.process:host:pid` (the worker's `infrastructure_pid`
    is a bare pid that names no host, and the worker cancels runs through it: left alone)."""
    flow_run = client.read_flow_run(flow_run_id)
    if _recorded_process(flow_run) is None:
        tags = [*flow_run.tags, f"{PROCESS_TAG}{process_identity()}"]
        client.update_flow_run(flow_run_id, tags=tags)


def _recorded_process(flow_run: FlowRun) -> str | None:
    for tag in flow_run.tags:
        if tag.startswith(PROCESS_TAG):
            return tag.removeprefix(PROCESS_TAG)
    return None


def recover(settings: Settings, exclude: str | None = None) -> RecoveryReport:
    """One recovery pass (also `mlops cleanup`): dead flow runs Crashed, then their leftovers."""
    report = RecoveryReport()
    with get_client(sync_client=True) as client:
        for flow_run in _running_flow_runs(client):
            if str(flow_run.id) != exclude and _is_dead(client, flow_run, settings):
                _crash(client, flow_run)
                report.crashed_flow_runs.append(f"{flow_run.name} ({flow_run.id})")
        report.released_leases.extend(release_expired_leases(client))

        def closed(flow_run_id: str) -> bool:
            try:
                state = client.read_flow_run(UUID(flow_run_id)).state
            except (ObjectNotFound, ValueError):
                return False  # not a run of this Prefect server: not ours to judge
            return state is not None and state.is_final()

        heal_tracking_and_registry(mlflow_client(settings), closed, champion_lock(settings), report)
    return report


def _running_flow_runs(client: SyncPrefectClient) -> list[FlowRun]:
    running = FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING]))
    return client.read_flow_runs(flow_run_filter=FlowRunFilter(state=running))


def _running_task_runs(client: SyncPrefectClient, flow_run: FlowRun) -> list[TaskRun]:
    return client.read_task_runs(
        task_run_filter=TaskRunFilter(
            flow_run_id=TaskRunFilterFlowRunId(any_=[flow_run.id]),
            state=TaskRunFilterState(type=TaskRunFilterStateType(any_=[StateType.RUNNING])),
        )
    )


def _is_dead(client: SyncPrefectClient, flow_run: FlowRun, settings: Settings) -> bool:
    gone = process_gone(_recorded_process(flow_run) or flow_run.infrastructure_pid)
    if gone is not None:
        return gone
    changes = [flow_run.state.timestamp] if flow_run.state else []
    task_runs = client.read_task_runs(
        task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[flow_run.id]))
    )
    changes += [t.state.timestamp for t in task_runs if t.state is not None]
    last = max(changes, default=flow_run.created or datetime.now(UTC))
    return went_silent(last, datetime.now(UTC), settings.crash_after_seconds)


def _crash(client: SyncPrefectClient, flow_run: FlowRun) -> None:
    where = _recorded_process(flow_run) or flow_run.infrastructure_pid or "an unrecorded process"
    message = f"its process ({where}) died without reporting; closed by the recovery pass"
    for task_run in _running_task_runs(client, flow_run):
        client.set_task_run_state(task_run.id, Crashed(message=message), force=True)
    client.set_flow_run_state(flow_run.id, Crashed(message=message), force=True)


def release_expired_leases(client: SyncPrefectClient) -> list[str]:
    """Free the slots of expired concurrency leases a temporary Prefect server left.

    A Prefect server's repossessor frees a dead holder's slot when its lease expires; the
    temporary server of an in-process run has no repossessor, so on a machine without
    PREFECT_API_URL, where leases live in files under PREFECT_HOME (the CLI's default), the
    recovery pass does its work.
    """
    settings = get_current_settings()
    if settings.api.url or settings.server.concurrency.lease_storage != FILESYSTEM_LEASES:
        return []
    from prefect.server.concurrency.lease_storage.filesystem import ConcurrencyLeaseStorage

    expired = asyncio.run(ConcurrencyLeaseStorage().read_expired_lease_ids())
    for lease_id in expired:
        client.release_concurrency_slots_with_lease(lease_id)
    return [str(lease_id) for lease_id in expired]
