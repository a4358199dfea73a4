"""The logger of the current Prefect run, or the module's own outside a run."""

from __future__ import annotations

import logging

from prefect.exceptions import MissingContextError
from prefect.logging import get_run_logger


def run_logger() -> logging.Logger | logging.LoggerAdapter:
    """The run's logger (its lines appear in the Prefect UI); a plain one outside a run."""
    try:
        return get_run_logger()
    except MissingContextError:  # called outside a run, e.g. `.fn` in a unit test
        return logging.getLogger("tasks")
