"""How the Python process of a flow run ends."""

from __future__ import annotations

import atexit
import gc
from typing import Any


def skip_exit_collection(*_: Any) -> None:
    """Make interpreter shutdown skip its final garbage collections over long-lived objects.

    A flow run imports Prefect, MLflow, Great Expectations and scikit-learn: millions of objects
    that CPython's shutdown collections walk (about 1.5 s per process) only to free memory the
    operating system takes back anyway. `gc.freeze()` at exit moves them out of the collector's
    reach, as servers do before forking. Every atexit handler still runs (logging's flush,
    Prefect's log and event workers, weakref finalizers, temporary-directory clean-up); only the
    collection of unreachable cycles at the very end is skipped. Usable as a Prefect `on_running`
    hook; calling it again registers nothing twice.
    """
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)
