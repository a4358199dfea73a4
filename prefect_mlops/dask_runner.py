"""Dask for the heavy fan-out: which task runner a setting names, and what work on a Dask
worker may use (its own cores, the cluster for cross-validation folds).

Prefect-free; `distributed` is imported only where a Dask runner is in use (the `dask` extra),
so a process that runs on threads never pays for it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

SCHEDULER_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx")


@dataclass(frozen=True)
class RunnerChoice:
    """Threads in the flow process, a local Dask cluster, or an existing Dask scheduler."""

    kind: Literal["threads", "local-dask", "scheduler"]
    address: str | None = None

    @property
    def uses_dask(self) -> bool:
        """True when submitted tasks go to Dask workers."""
        return self.kind != "threads"


def parse_task_runner(value: str) -> RunnerChoice:
    """The runner a `task_runner` setting names; a clear error for anything else."""
    text = value.strip()
    if text == "threads":
        return RunnerChoice("threads")
    if text == "dask":
        return RunnerChoice("local-dask")
    parts = urlsplit(text)
    if parts.scheme in SCHEDULER_SCHEMES and parts.hostname:
        try:
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"task_runner {value!r}: bad port ({exc})") from None
        if port is not None and not parts.path.strip("/"):
            return RunnerChoice("scheduler", text)
    raise ValueError(
        f"task_runner {value!r}: expected 'threads', 'dask' (a local Dask cluster started with "
        f"the flow run) or a Dask scheduler address such as 'tcp://scheduler:8786' "
        f"(schemes {', '.join(SCHEDULER_SCHEMES)}, with host and port)"
    )


def local_cluster_kwargs() -> dict[str, Any]:
    """`distributed.LocalCluster` arguments for the `dask` setting: worker processes (the GIL
    and glibc arenas stay per worker) sized by Dask from the cores, everything on loopback and
    on free ports (its HTTP server too: the dashboard itself needs bokeh, not in the extra)."""
    return {"processes": True, "host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"}


def current_worker() -> Any | None:
    """The Dask worker running this code, or None (without importing distributed if unused)."""
    if "distributed" not in sys.modules:
        return None
    from distributed import get_worker

    try:
        return get_worker()
    except ValueError:  # distributed is imported, but this is not a worker's task
        return None


def workers_on_host(worker: Any) -> int:
    """How many workers of the cluster share this worker's host (they split its cores)."""
    host = urlsplit(worker.address).hostname
    info = worker.client.scheduler_info(n_workers=-1)
    return sum(1 for address in info["workers"] if urlsplit(address).hostname == host) or 1


@contextmanager
def fold_backend() -> Iterator[int | None]:
    """joblib's Dask backend on a Dask worker, so one candidate's cross-validation folds spread
    over the cluster (joblib secedes the waiting task from the worker's pool: no deadlock when
    every slot holds a candidate); elsewhere nothing. Yields the `n_jobs` to pass."""
    if current_worker() is None:
        yield None
        return
    import joblib

    with joblib.parallel_backend("dask"):
        yield -1
