"""The logger of the current Prefect run, or the module's own outside a run; and the run log kept
to what a person reads (the project's silent process hooks are not announced at INFO)."""

from __future__ import annotations

import logging
from typing import Any

from prefect.client.schemas.objects import FlowRun
from prefect.exceptions import MissingContextError
from prefect.flows import Flow
from prefect.logging import get_run_logger
from prefect.states import State

# Hooks that only set a process policy: Prefect's engine logs two INFO lines per call of each
# (32 of 74 lines of a training run were these), so they are demoted to DEBUG.
SILENT_HOOKS = frozenset(
    {"release_memory", "refuse_pickle", "exit_without_collection", "quiet_hook_notices"}
)
_ENGINE_LOGGERS = ("prefect.engine", "prefect.flow_runs", "prefect.task_runs")


def run_logger() -> logging.Logger | logging.LoggerAdapter:
    """The run's logger (its lines appear in the Prefect UI); a plain one outside a run."""
    try:
        return get_run_logger()
    except MissingContextError:  # called outside a run, e.g. `.fn` in a unit test
        return logging.getLogger("tasks")


class HookNoticeFilter(logging.Filter):
    """Prefect's "Running hook 'x'" and "Hook 'x' finished running successfully" lines of the
    silent hooks become DEBUG records (shown only when Prefect logs at DEBUG)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not _is_silent_notice(str(record.msg)):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def _is_silent_notice(message: str) -> bool:
    for prefix in ("Running hook '", "Hook '"):
        if message.startswith(prefix):
            return message[len(prefix) :].split("'", 1)[0] in SILENT_HOOKS
    return False


def quiet_hook_notices(flow: Flow[..., Any], flow_run: FlowRun, state: State[Any]) -> None:
    """`on_running` hook, first of a flow's: the notices of the silent hooks go to DEBUG from here
    on in this process (installed once; only its own start is still announced)."""
    for name in _ENGINE_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, HookNoticeFilter) for f in logger.filters):
            logger.addFilter(HookNoticeFilter())
