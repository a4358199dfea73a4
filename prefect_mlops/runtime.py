"""Process settings: exit collection, heap trimming, CPU shares (each with the figure it buys),
and pickle loading switched off.

Kept apart from the domain code so that what is a measured workaround stays visible as one.
"""

from __future__ import annotations

import atexit
import ctypes
import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

from threadpoolctl import threadpool_limits

from prefect_mlops.dask_runner import current_worker, workers_on_host


def skip_exit_collection(*_: Any) -> None:
    """Make interpreter shutdown skip its final garbage collections over long-lived objects.

    A flow run imports Prefect, MLflow, Great Expectations and scikit-learn: millions of objects
    that CPython's shutdown collections walk (about 1.5 s per process) only to free memory the
    operating system takes back anyway. `gc.freeze()` at exit moves them out of the collector's
    reach, as servers do before forking. Every atexit handler still runs (logging's flush,
    Prefect's log and event workers, weakref finalizers, temporary-directory clean-up); only the
    collection of unreachable cycles at the very end is skipped. Usable as a Prefect `on_running`
    hook; calling it again registers nothing twice. Measured: 1.37 s -> 0.08 s per process.
    """
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)


def refuse_pickle_loading() -> None:
    """Switch MLflow's pickle deserialisation off for this process and the ones it starts.

    MLflow 3.17 allows it by default (`MLFLOW_ALLOW_PICKLE_DESERIALIZATION`, read on every load),
    so any model whose MLmodel declares pickle would run its payload. Off, MLflow's own loaders
    refuse every scikit-learn file, skops included; the project loads through
    `prefect_mlops.packaging.load_packaged`, which admits only skops and ONNX. Call it where a
    service or a flow starts.
    """
    os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "false"


@cache
def _libc() -> Any:
    try:
        library = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (macOS, musl): nothing to trim
        return None
    return library if hasattr(library, "malloc_trim") else None


def release_memory(*_: Any) -> None:
    """Give the heap that a data-heavy step freed back to the operating system.

    glibc keeps freed memory in per-thread arenas, so after a task on a worker thread drops a
    large frame the process still holds it and the next task's peak stacks on top (Dask's
    workers trim for the same reason). Usable as a Prefect state hook; a no-op off glibc. No
    `gc.collect()`: frames are freed by reference counting, and a full collection over the
    objects Prefect, MLflow and GX keep costs about 0.4 s a call.
    """
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def cpu_count() -> int:
    """Cores this process may use (its affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cpu_share(parallel: int) -> int:
    """OpenMP threads for each of `parallel` jobs side by side on this process's cores."""
    return max(1, cpu_count() // max(1, parallel))


@cache
def _dask_worker_share(address: str) -> int:
    worker = current_worker()
    if worker is None or worker.address != address:
        raise RuntimeError(f"not on the Dask worker {address}")
    cores = max(1, cpu_count() // workers_on_host(worker))
    return max(1, cores // max(1, worker.state.nthreads))


def dask_worker_threads() -> int | None:
    """OpenMP and BLAS threads for one task on this Dask worker, or None off a worker.

    Sized from the worker's own cores: its host's cores split among the cluster's workers on
    that host, then among the worker's task slots (`nthreads`). The Dask nanny sets OMP, MKL and
    OpenBLAS threads to 1, which starves a worker started with fewer slots than cores; the flow
    host's count would be wrong on any other machine. Asked of the scheduler once per worker.
    """
    worker = current_worker()
    return None if worker is None else _dask_worker_share(worker.address)


@contextmanager
def openmp_threads(threads: int) -> Iterator[None]:
    """Cap OpenMP threads (scikit-learn's boosting, forests' BLAS) for work on this thread.

    Candidates side by side on worker threads share the cores; uncapped, their OpenMP teams
    thrash (once libgomp manages more threads than cores it stops spin-waiting: a refit made
    76,881 voluntary context switches instead of 288 and took 10.1 s instead of 8.2 s).
    On a Dask worker `threads` (the flow host's share) gives way to the worker's own share,
    for BLAS as well as OpenMP.
    """
    on_worker = dask_worker_threads()
    if on_worker is not None:
        with threadpool_limits(limits=on_worker):
            yield
        return
    with threadpool_limits(limits=threads, user_api="openmp"):
        yield
