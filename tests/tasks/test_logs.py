"""The run log keeps to what a person reads: the silent process hooks' notices go to DEBUG."""

from __future__ import annotations

import logging

import pytest

from tasks.logs import HookNoticeFilter


def record(message: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord("prefect.task_runs", level, __file__, 1, message, None, None)


@pytest.mark.parametrize(
    "message",
    [
        "Running hook 'release_memory' in response to entering state 'Completed'",
        "Hook 'release_memory' finished running successfully",
        "Hook 'refuse_pickle' finished running successfully",
    ],
)
def test_silent_hook_notices_are_demoted_and_dropped_at_info(message: str) -> None:
    notice = record(message)
    assert HookNoticeFilter().filter(notice) is False
    assert notice.levelno == logging.DEBUG


@pytest.mark.parametrize(
    "message",
    [
        "Running hook '_close_mlflow_runs' in response to entering state 'Failed'",
        "Finished in state Completed()",
        "model gate: BLESSED, 3 of 3 rules passed",
    ],
)
def test_other_lines_pass_unchanged(message: str) -> None:
    line = record(message)
    assert HookNoticeFilter().filter(line) is True
    assert line.levelno == logging.INFO


def test_a_failed_silent_hook_is_still_reported() -> None:
    error = record("An error was encountered while running hook 'release_memory'", logging.ERROR)
    assert HookNoticeFilter().filter(error) is True
