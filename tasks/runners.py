"""Task runners: threads in the flow process, or Dask, as `Settings().task_runner` says.

The flows' decorators hold a `SettingsTaskRunner`, which chooses when a flow run starts (in the
process that runs it, a deployment's worker included): nothing is read or started at import,
and a Dask cluster starts only at the run's first submitted task (prefect-dask creates its
client lazily). Only `.submit()` and `.map()` go to Dask; tasks called directly stay on the flow
process, and so do submitted tasks tagged `IN_PROCESS` (one-time warm-ups that the flow process
itself uses, like the model-logging preparation).
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any, Self

from prefect.context import FlowRunContext
from prefect.futures import PrefectFuture
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from prefect_mlops.dask_runner import RunnerChoice, local_cluster_kwargs, parse_task_runner
from prefect_mlops.settings import Settings

IN_PROCESS = "in-process"


class SettingsTaskRunner(TaskRunner[PrefectFuture[Any]]):
    """Threads, a local Dask cluster, or an existing Dask scheduler, chosen at flow start."""

    def __init__(self, max_threads: int | None = None) -> None:
        self.max_threads = max_threads
        self.choice: RunnerChoice | None = None
        self._threads: ThreadPoolTaskRunner[Any] | None = None
        self._dask: Any = None  # a prefect_dask.DaskTaskRunner when the setting names Dask
        self._stack = ExitStack()
        super().__init__()

    def duplicate(self) -> Self:
        """A runner that chooses again when it starts."""
        return type(self)(self.max_threads)

    def __enter__(self) -> Self:
        super().__enter__()
        self.choice = parse_task_runner(Settings().task_runner)
        self._stack = ExitStack()
        self._threads = self._stack.enter_context(ThreadPoolTaskRunner(self.max_threads))
        if self.choice.uses_dask:
            self._dask = self._stack.enter_context(dask_task_runner(self.choice))
        return self

    def __exit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> None:
        try:
            self._stack.__exit__(exc_type, exc_value, traceback)
        finally:
            self._threads = self._dask = None
            super().__exit__(exc_type, exc_value, traceback)

    def submit(
        self,
        task: Any,
        parameters: dict[str, Any],
        wait_for: Any = None,
        dependencies: Any = None,
    ) -> PrefectFuture[Any]:
        """To Dask when the setting names it and the task is not tagged `IN_PROCESS`."""
        runner = self._dask if self._dask is not None and IN_PROCESS not in task.tags else None
        if runner is None:
            runner = self._threads
        if runner is None:
            raise RuntimeError("The task runner must be started before submitting work.")
        future: PrefectFuture[Any] = runner.submit(task, parameters, wait_for, dependencies)
        return future

    def cancel_all(self) -> None:
        """Cancel what the thread pool still holds (Prefect calls it on a cancelled run)."""
        if self._threads is not None:
            self._threads.cancel_all()

    def dask_slots(self) -> int | None:
        """Task slots of the Dask cluster (sum of its workers' threads), None on threads."""
        if self._dask is None:
            return None
        info = self._dask.client.scheduler_info(n_workers=-1)
        return sum(int(w["nthreads"]) for w in info["workers"].values()) or 1


def dask_task_runner(choice: RunnerChoice) -> Any:
    """prefect-dask's runner for an existing scheduler or a local cluster (the `dask` extra)."""
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError as exc:
        raise RuntimeError(
            f"task_runner {choice.address or 'dask'!r} needs the `dask` extra "
            f"(pip install 'prefect-mlops[dask]'): {exc}"
        ) from exc
    if choice.kind == "scheduler":
        return DaskTaskRunner(address=choice.address)
    return DaskTaskRunner(cluster_kwargs=local_cluster_kwargs())


def current_dask_slots() -> int | None:
    """Task slots of the running flow's Dask cluster, or None when its tasks run on threads."""
    context = FlowRunContext.get()
    runner = context.task_runner if context is not None else None
    return runner.dask_slots() if isinstance(runner, SettingsTaskRunner) else None
