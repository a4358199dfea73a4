"""The service's prediction-log writer: requests append references, a thread writes them.

Requests only append a reference to a bounded deque; a writer thread turns records into the
store's compact form and appends them (`prefect_mlops.prediction_log` holds the stores and the
log's contract). A failed write is counted and logged, and its rows are retried on the next flush.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

from prefect_mlops.prediction_log import FeedbackRecord, LogStore, PredictionRecord, Table
from serving.metrics import ServiceMetrics

logger = logging.getLogger(__name__)

MAX_PENDING_CHUNKS = 100_000
PREPARE_SECONDS = 0.1


class PredictionLog:
    """Non-blocking recorder: requests append to a deque; a writer thread does the rest.

    Nothing wakes the writer per request. Every `PREPARE_SECONDS` it turns new records into
    the store's compact form (so few Python objects live long enough to burden the GC);
    every `flush_seconds` it writes what is prepared (one Parquet file per day, or one
    transaction). A failed write is counted and retried at the next flush.
    """

    def __init__(
        self,
        store: LogStore,
        metrics: ServiceMetrics,
        flush_seconds: float = 1.0,
        queue_size: int = 100_000,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._flush_seconds = flush_seconds
        self._capacity = queue_size
        self._items: deque[PredictionRecord | FeedbackRecord] = deque()
        self._prepared: dict[Table, list[Any]] = {"predictions": [], "feedback": []}
        self._wake = threading.Event()
        self._waiters: list[threading.Event] = []
        self._closing = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the writer thread."""
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def record(self, item: PredictionRecord | FeedbackRecord) -> None:
        """Keep an item for the writer; never blocks and never raises (overflow is counted)."""
        if len(self._items) >= self._capacity:
            self._metrics.log_failures.labels("dropped").inc()
            return
        self._items.append(item)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything recorded so far has been written (or has failed)."""
        if self._thread is None:
            return
        done = threading.Event()
        self._waiters.append(done)
        self._wake.set()
        done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is pending and stop the writer."""
        if self._thread is None:
            return
        self._closing = True
        self._wake.set()
        self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        last_write = time.monotonic()
        while True:
            self._wake.wait(min(PREPARE_SECONDS, self._flush_seconds))
            self._wake.clear()
            waiters, self._waiters = self._waiters, []
            closing = self._closing
            self._prepare()
            if waiters or closing or time.monotonic() - last_write >= self._flush_seconds:
                self._write()
                last_write = time.monotonic()
            for done in waiters:
                done.set()
            if closing:
                return

    def _prepare(self) -> None:
        records: dict[Table, list[Any]] = {"predictions": [], "feedback": []}
        items = self._items
        while items:
            item = items.popleft()
            records["predictions" if isinstance(item, PredictionRecord) else "feedback"].append(
                item
            )
        for table, batch in records.items():
            if not batch:
                continue
            try:
                self._prepared[table].extend(self._store.prepare(table, batch))
            except Exception:  # a record the store cannot represent: counted, logged, dropped
                self._metrics.log_failures.labels("prepare").inc()
                logger.exception("prediction log: preparing %d %s failed", len(batch), table)

    def _write(self) -> None:
        for table, prepared in self._prepared.items():
            if not prepared:
                continue
            try:
                rows = self._store.write(table, prepared)
            except Exception:  # the log must never take the service down: count, log, retry
                self._metrics.log_failures.labels("write").inc()
                logger.exception("prediction log: writing %s failed; kept for retry", table)
                if len(prepared) > MAX_PENDING_CHUNKS:  # bounded memory while the store is down
                    self._metrics.log_failures.labels("dropped").inc()
                    del prepared[: len(prepared) - MAX_PENDING_CHUNKS]
                continue
            if table == "predictions":
                self._metrics.log_written.inc(rows)
            self._prepared[table] = []
