"""The prediction log: every prediction and label, written in the background, read by monitoring.

Requests only put a reference on a bounded queue; a writer thread turns batches into rows and
appends them to a Parquet dataset partitioned by day (one immutable file per flush) or to a
SQL database. A failed write is counted and logged, and its rows are retried on the next flush;
files and committed rows already written are never touched again.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from serving.metrics import ServiceMetrics
from serving.schema import Columns

logger = logging.getLogger(__name__)

PREDICTION_COLUMNS = (
    "request_id",
    "row_index",
    "timestamp",
    "model_name",
    "model_version",
    "features",
    "prediction",
    "probabilities",
)
FEEDBACK_COLUMNS = ("request_id", "row_index", "timestamp", "label")
MAX_BATCH_ROWS = 50_000


@dataclass(frozen=True)
class PredictionRecord:
    """One answered request, as references: expanded into rows off the request path."""

    request_id: str
    timestamp: float
    model_name: str
    model_version: str
    columns: Columns
    predictions: np.ndarray
    probabilities: np.ndarray | None


@dataclass(frozen=True)
class FeedbackRecord:
    """A ground-truth label for one row of an earlier request."""

    request_id: str
    row_index: int
    label: Any
    timestamp: float


class LogStore(Protocol):
    """Where rows go: append-only, all rows of a call or none."""

    def append(self, table: str, rows: list[dict[str, Any]]) -> None: ...


class ParquetStore:
    """`<root>/<table>/date=YYYY-MM-DD/part-*.parquet`, each file written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def append(self, table: str, rows: list[dict[str, Any]]) -> None:
        frame = pd.DataFrame(rows)
        days = pd.to_datetime(frame["timestamp"], unit="s", utc=True).dt.strftime("%Y-%m-%d")
        for day, part in frame.groupby(days, sort=False):
            folder = self.root / table / f"date={day}"
            folder.mkdir(parents=True, exist_ok=True)
            name = f"part-{time.time_ns()}-{uuid.uuid4().hex[:8]}.parquet"
            tmp = folder / f".{name}.tmp"
            pq.write_table(pa.Table.from_pandas(part, preserve_index=False), tmp)
            os.replace(tmp, folder / name)


class SqlStore:
    """Tables `predictions` and `feedback` in any SQLAlchemy database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: sa.Engine | None = None
        self.meta = sa.MetaData()
        text, real = sa.Text, sa.Float
        sa.Table(
            "predictions",
            self.meta,
            *(sa.Column(c, text) for c in ("request_id", "model_name", "model_version")),
            sa.Column("row_index", sa.Integer),
            sa.Column("timestamp", real),
            *(sa.Column(c, text) for c in ("features", "prediction", "probabilities")),
        )
        sa.Table(
            "feedback",
            self.meta,
            sa.Column("request_id", text),
            sa.Column("row_index", sa.Integer),
            sa.Column("timestamp", real),
            sa.Column("label", text),
        )

    def append(self, table: str, rows: list[dict[str, Any]]) -> None:
        if self.engine is None:  # connect on first write, so a down database never stops start-up
            engine = sa.create_engine(self.url)
            self.meta.create_all(engine)
            self.engine = engine
        with self.engine.begin() as connection:
            connection.execute(self.meta.tables[table].insert(), rows)


def open_store(url: str | None, directory: Path) -> LogStore:
    """A SQL store when a SQLAlchemy URL is configured, else the Parquet dataset."""
    return SqlStore(url) if url else ParquetStore(directory)


class PredictionLog:
    """Non-blocking recorder with a background writer thread."""

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
        self._queue: queue.Queue[PredictionRecord | FeedbackRecord | None] = queue.Queue(queue_size)
        self._pending: dict[str, list[dict[str, Any]]] = {"predictions": [], "feedback": []}
        self._flushed = threading.Condition()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the writer thread."""
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def record(self, item: PredictionRecord | FeedbackRecord) -> None:
        """Queue an item; never blocks and never raises (a full queue is counted)."""
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self._metrics.log_failures.labels("dropped").inc()

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything queued so far has been written (or failed)."""
        if self._thread is None:
            return
        marker = threading.Event()
        self._queue.put(_FlushMarker(marker))  # type: ignore[arg-type]
        marker.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued and stop the writer."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        deadline = time.monotonic() + self._flush_seconds
        while True:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                item = _TICK
            if item is None:
                self._write()
                return
            if isinstance(item, _FlushMarker):
                self._write()
                item.done.set()
                continue
            if item is not _TICK:
                self._expand(item)
            if item is _TICK or len(self._pending["predictions"]) >= MAX_BATCH_ROWS:
                self._write()
                deadline = time.monotonic() + self._flush_seconds

    def _expand(self, item: PredictionRecord | FeedbackRecord) -> None:
        if isinstance(item, FeedbackRecord):
            self._pending["feedback"].append(
                {
                    "request_id": item.request_id,
                    "row_index": item.row_index,
                    "timestamp": item.timestamp,
                    "label": _json(item.label),
                }
            )
            return
        names = list(item.columns)
        rows = zip(*(item.columns[n] for n in names), strict=True)
        predictions = item.predictions.tolist()
        probabilities = item.probabilities.tolist() if item.probabilities is not None else None
        for index, values in enumerate(rows):
            self._pending["predictions"].append(
                {
                    "request_id": item.request_id,
                    "row_index": index,
                    "timestamp": item.timestamp,
                    "model_name": item.model_name,
                    "model_version": item.model_version,
                    "features": _json(dict(zip(names, values, strict=True))),
                    "prediction": _json(predictions[index]),
                    "probabilities": None if probabilities is None else _json(probabilities[index]),
                }
            )

    def _write(self) -> None:
        for table, rows in self._pending.items():
            if not rows:
                continue
            try:
                self._store.append(table, rows)
            except Exception:  # the log must never take the service down: count, log, retry
                self._metrics.log_failures.labels("write").inc()
                logger.exception("prediction log: writing %d %s rows failed", len(rows), table)
                if len(rows) > MAX_BATCH_ROWS * 10:
                    self._metrics.log_failures.labels("dropped").inc()
                    del rows[: len(rows) - MAX_BATCH_ROWS * 10]
                continue
            if table == "predictions":
                self._metrics.log_written.inc(len(rows))
            self._pending[table] = []


@dataclass(frozen=True)
class _FlushMarker:
    done: threading.Event


_TICK = object()


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY, default=str).decode()


def read_prediction_log(url: str | None = None, directory: Path | None = None) -> pd.DataFrame:
    """Every logged prediction with its features as columns and the latest label joined on."""
    if url:
        engine = sa.create_engine(url)
        predictions = pd.read_sql_table("predictions", engine)
        feedback = pd.read_sql_table("feedback", engine)
    else:
        root = Path(directory or "artifacts/prediction_log")
        predictions = _read_parquet_table(root / "predictions", PREDICTION_COLUMNS)
        feedback = _read_parquet_table(root / "feedback", FEEDBACK_COLUMNS)
    features = pd.DataFrame([orjson.loads(f) for f in predictions["features"]])
    predictions = predictions.drop(columns=["features"]).reset_index(drop=True)
    predictions["prediction"] = [orjson.loads(p) for p in predictions["prediction"]]
    predictions["timestamp"] = pd.to_datetime(predictions["timestamp"], unit="s", utc=True)
    labels = (
        feedback.sort_values("timestamp")
        .drop_duplicates(["request_id", "row_index"], keep="last")
        .assign(label=lambda f: [orjson.loads(v) for v in f["label"]])[
            ["request_id", "row_index", "label"]
        ]
    )
    joined = pd.concat([predictions, features], axis=1)
    return joined.merge(labels, on=["request_id", "row_index"], how="left")


def _read_parquet_table(folder: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    if not folder.exists():
        return pd.DataFrame({c: [] for c in columns})
    return pd.read_parquet(folder, columns=list(columns))
