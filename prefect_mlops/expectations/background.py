"""The checkpoint opened on a thread, so a fresh process imports GX while its CSV streams.

Importing Great Expectations takes about 3 s of a fresh process (its expectation classes pull in
scipy.stats and altair) and holds the interpreter; a streaming CSV snapshot spends most of its
1.6 s per 1M rows in pyarrow's reader, writer and hashing, which release it. A one-shot process
that snapshots and then validates (`python -m bench.ingest`'s own side) starts this right after
its own imports and hands the result to `validate_snapshot_file(..., opened=...)`. A flow's
process has already imported GX by the time its tasks run; it gains nothing from this.

While the thread imports, the interpreter is handed over every 0.1 ms instead of every 5 ms
(`IMPORT_SWITCH_SECONDS`): the snapshot's thread takes the interpreter back between pyarrow calls
(a dozen per column per block) and would otherwise wait up to 5 ms each time.

What it buys depends on spare cores: pyarrow's reader already keeps both cores of the benchmark
machine busy, and measured there under load average 6-14 from other work (README, ingest
figures) the one-shot process was no faster than one importing GX first (1M rows 14.6-18.7 s
against 10.5-16.5 s, 5M 30-65 s against 27-48 s): the snapshot slowed by about what the import
took. This module imports nothing of GX itself: the thread does.
"""

from __future__ import annotations

import sys
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from prefect_mlops.config import PipelineConfig
from prefect_mlops.expectations.suites import Purpose
from prefect_mlops.settings import Settings

if TYPE_CHECKING:
    from great_expectations.checkpoint import Checkpoint
    from great_expectations.data_context import FileDataContext

IMPORT_SWITCH_SECONDS = 0.0001


def open_checkpoint_in_background(
    config: PipelineConfig, settings: Settings, purpose: Purpose
) -> Future[tuple[FileDataContext, Checkpoint]]:
    """`run.open_checkpoint` on a thread of its own; its errors come out of `Future.result()`.

    Start it after the caller's own imports (pandas, pyarrow, the core): the thread then imports
    only what GX alone needs, and the two threads never wait on each other's module locks.
    """
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gx-setup")
    future = executor.submit(_open_checkpoint, config, settings, purpose)
    executor.shutdown(wait=False)  # the thread ends with its one call
    return future


def _open_checkpoint(
    config: PipelineConfig, settings: Settings, purpose: Purpose
) -> tuple[FileDataContext, Checkpoint]:
    interval = sys.getswitchinterval()  # process-wide: restored when the import is done
    sys.setswitchinterval(IMPORT_SWITCH_SECONDS)
    try:
        from prefect_mlops.expectations import chunked  # noqa: F401  (GX, the chunked runner)
        from prefect_mlops.expectations.run import open_checkpoint

        return open_checkpoint(config, settings, purpose)
    finally:
        sys.setswitchinterval(interval)
