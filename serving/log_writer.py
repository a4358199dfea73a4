"""The service's prediction-log writer: requests append references, a thread writes them.

Requests only append a reference to a bounded deque; a writer thread turns records into the
store's compact form and appends them (`prefect_mlops.prediction_log` holds the stores and the
log's contract). Rows the store refuses go to its dead-letter store and the rest of their batch
is written (`prefect_mlops.log_safety`); rows a down store cannot take wait for the next flush,
spill to the local spool when too many wait or at shutdown, and are replayed from it later.
Every `compact_seconds` (hourly) the writer merges the small files of past days of a Parquet log
(`ParquetStore.compact`), so a day holds a bounded number of files whatever the traffic.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

from prefect_mlops.log_safety import (
    DEAD_LETTER,
    DeadLetter,
    Outcome,
    count_rows,
    prepare_rows,
    record_rows,
    replay_spool,
    spill,
    spooled_files,
    write_dead_letters,
    write_rows,
)
from prefect_mlops.prediction_log import (
    FeedbackRecord,
    LogStore,
    ParquetStore,
    PredictionRecord,
    Table,
)
from serving.metrics import ServiceMetrics

logger = logging.getLogger(__name__)

MAX_PENDING_CHUNKS = 100_000  # beyond this, pending rows go to the spool: bounded memory
PREPARE_SECONDS = 0.1
COMPACT_SECONDS = 3600.0  # one flush a second makes 3,600 files an hour: merged the next day


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
        compact_seconds: float = COMPACT_SECONDS,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._flush_seconds = flush_seconds
        self._capacity = queue_size
        self._compact_seconds = compact_seconds
        self._items: deque[PredictionRecord | FeedbackRecord] = deque()
        self._prepared: dict[Table, list[Any]] = {"predictions": [], "feedback": []}
        self._dead: list[DeadLetter] = []
        self._replay_due = False
        self._wake = threading.Event()
        self._waiters: list[threading.Event] = []
        self._closing = False
        self._thread: threading.Thread | None = None

    @property
    def store(self) -> LogStore:
        return self._store

    def start(self) -> None:
        """Start the writer thread; rows spooled by an earlier run are replayed first."""
        self._closing = False
        self._replay_due = bool(spooled_files(self._store))
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def record(self, item: PredictionRecord | FeedbackRecord) -> None:
        """Keep an item for the writer; never blocks and never raises (overflow is counted)."""
        if len(self._items) >= self._capacity:
            table = "predictions" if isinstance(item, PredictionRecord) else "feedback"
            self._metrics.log_lost.labels(table).inc(record_rows(item))
            logger.error("prediction log: queue full (%d items); a %s lost", self._capacity, table)
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
        """Write what is pending, spool what the store cannot take, and stop the writer."""
        if self._thread is None:
            return
        self._closing = True
        self._wake.set()
        self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        last_write = last_compaction = time.monotonic()
        while True:
            self._wake.wait(min(PREPARE_SECONDS, self._flush_seconds))
            self._wake.clear()
            waiters, self._waiters = self._waiters, []
            closing = self._closing
            self._prepare()
            if waiters or closing or time.monotonic() - last_write >= self._flush_seconds:
                self._write()
                last_write = time.monotonic()
            if closing:
                self._spill_pending()
            elif time.monotonic() - last_compaction >= self._compact_seconds:
                self._compact()
                last_compaction = time.monotonic()
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
            if batch:
                prepared, dead = prepare_rows(self._store, table, batch)
                self._prepared[table].extend(prepared)
                self._dead += dead

    def _write(self) -> None:
        for table, prepared in self._prepared.items():
            if prepared:
                outcome = write_rows(self._store, table, prepared)
                self._count(table, outcome)
                self._prepared[table] = outcome.pending
                self._dead += outcome.dead
        self._write_dead_letters()
        if sum(len(chunks) for chunks in self._prepared.values()) > MAX_PENDING_CHUNKS:
            self._spill_pending()
        if self._replay_due and not any(self._prepared.values()):
            self._replay()

    def _count(self, table: str, outcome: Outcome) -> None:
        if table != DEAD_LETTER:
            self._metrics.log_written.labels(table).inc(outcome.written)
        if outcome.outage:
            self._metrics.log_failures.labels("write").inc()
            logger.error("prediction log: writing %s failed, kept: %s", table, outcome.outage)

    def _write_dead_letters(self) -> None:
        if not self._dead:
            return
        letters, self._dead = self._dead, []
        try:
            write_dead_letters(self._store, letters)
        except Exception:  # the dead-letter store is the log's: retried with it, then spooled
            self._metrics.log_failures.labels("dead_letter").inc()
            logger.exception("prediction log: writing %d dead letters failed", len(letters))
            self._dead = letters + self._dead
            return
        for letter in letters:
            self._metrics.log_dead_lettered.labels(letter.table).inc()
        logger.warning(
            "prediction log: %d rows refused by the store, dead-lettered (first: %s)",
            len(letters),
            letters[0].reason,
        )

    def _spill_pending(self) -> None:
        """Move every pending chunk to the local spool (the store is down), counting losses."""
        pending: list[tuple[str, list[Any]]] = [*self._prepared.items(), (DEAD_LETTER, self._dead)]
        self._prepared = {"predictions": [], "feedback": []}
        self._dead = []
        for table, chunks in pending:
            if not chunks:
                continue
            rows = count_rows(chunks)
            try:
                spill(self._store, table, chunks)
            except Exception:  # both the store and the local disk refuse: the rows are lost
                self._metrics.log_lost.labels(table).inc(rows)
                logger.exception("prediction log: %d %s rows lost (spool failed)", rows, table)
                continue
            self._metrics.log_spooled.labels(table).inc(rows)
            self._replay_due = True
            logger.warning("prediction log: %d %s rows spooled", rows, table)

    def _compact(self) -> None:
        """Merge the files of past days (Parquet log); a failure is logged, tried next time."""
        if not isinstance(self._store, ParquetStore):
            return
        try:
            merged = self._store.compact()
        except Exception:  # compaction only tidies: rows are never at stake, the writer goes on
            self._metrics.log_failures.labels("compact").inc()
            logger.exception("prediction log: compaction failed")
            return
        if merged:
            logger.info("prediction log: %d files of past days compacted", merged)

    def _replay(self) -> None:
        self._replay_due = False
        for table, outcome in replay_spool(self._store).items():
            self._count(table, outcome)
            self._dead += outcome.dead
            self._replay_due = self._replay_due or outcome.outage is not None
        self._write_dead_letters()
