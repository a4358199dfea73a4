"""Resilience and resource policies of tasks, declared once: retries on I/O, heap trimming."""

from __future__ import annotations

from typing import Any

from prefect.client.schemas.objects import FlowRun
from prefect.flows import Flow
from prefect.states import State

from prefect_mlops.errors import MlopsError
from prefect_mlops.runtime import refuse_pickle_loading, release_memory, skip_exit_collection

IO_RETRY_DELAYS = [1, 5]


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry I/O failures, but never our own errors: a missing file will not appear by retrying."""
    error = state.data if isinstance(state.data, BaseException) else None
    if error is None:
        error = state.result(raise_on_failure=False)
    return not isinstance(error, MlopsError | ValueError | KeyError | TypeError)


# `@task(**IO_RETRIES)`: a task that talks to a store retries transient failures twice.
IO_RETRIES: dict[str, Any] = {
    "retries": 2,
    "retry_delay_seconds": IO_RETRY_DELAYS,
    "retry_condition_fn": retry_transient,
}

# `@task(**RELEASES_MEMORY)`: a data-heavy task hands its freed heap back when it ends, either way.
RELEASES_MEMORY: dict[str, Any] = {
    "on_completion": [release_memory],
    "on_failure": [release_memory],
}


def exit_without_collection(flow: Flow[..., Any], flow_run: FlowRun, state: State[Any]) -> None:
    """`on_running` hook of the heavy flows: their process exits without the final GC walk."""
    skip_exit_collection()


def refuse_pickle(flow: Flow[..., Any], flow_run: FlowRun, state: State[Any]) -> None:
    """`on_running` hook of every flow that loads models: MLflow's pickle loading is off."""
    refuse_pickle_loading()
