"""Progress artifacts of long work (candidates, the refit, chunked scoring and validation): a bar
in the Prefect UI that says how far a run is and what it is doing."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast
from uuid import UUID

from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    TaskRunFilter,
    TaskRunFilterName,
    TaskRunFilterState,
    TaskRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.sorting import TaskRunSort
from prefect.context import FlowRunContext, TaskRunContext


class Progress:
    """One progress artifact, `done` of `total` steps; a no-op outside a flow or task run."""

    def __init__(self, key: str, total: int, description: str) -> None:
        self.total = max(1, total)
        self._id: UUID | None = None
        if FlowRunContext.get() is not None or TaskRunContext.get() is not None:
            # Prefect dispatches sync or async by the caller: from sync code it is the id.
            self._id = cast(UUID, create_progress_artifact(0.0, key=key, description=description))

    def update(self, done: int, description: str) -> None:
        """Move the bar to `done` of the total steps, saying what is happening now."""
        if self._id is not None:
            percent = round(100.0 * min(done, self.total) / self.total, 1)
            update_progress_artifact(self._id, percent, description=description)


@contextmanager
def watch_task_runs(progress: Progress, name_prefix: str, what: str) -> Iterator[None]:
    """While the block runs, count this flow run's finished task runs whose name starts with
    `name_prefix` every 2 s and move `progress` with them: however the tasks are scheduled
    (threads, waves, a Dask cluster), the bar follows the server's record of them."""
    run = FlowRunContext.get()
    if run is None or run.flow_run is None:
        yield
        return
    stop = threading.Event()
    flow_run_id = run.flow_run.id

    def poll() -> None:
        finished = TaskRunFilter(
            name=TaskRunFilterName(like_=name_prefix),
            state=TaskRunFilterState(
                type=TaskRunFilterStateType(any_=[StateType.COMPLETED, StateType.FAILED])
            ),
        )
        runs = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        seen = 0
        with get_client(sync_client=True) as client:
            while not stop.wait(2.0):
                done = len(
                    client.read_task_runs(
                        flow_run_filter=runs,
                        task_run_filter=finished,
                        deployment_filter=None,
                        sort=TaskRunSort.EXPECTED_START_TIME_ASC,
                        limit=progress.total,
                        offset=0,
                    )
                )
                if done != seen:
                    seen = done
                    progress.update(done, f"{done} of {progress.total} {what} done")

    # Prefect's settings (the API URL) live in context variables: the thread gets a copy.
    watcher = threading.Thread(
        target=contextvars.copy_context().run, args=(poll,), daemon=True, name="progress"
    )
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join(timeout=10)
