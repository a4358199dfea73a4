"""Row-level isolation and durability for the prediction log: dead letters and the spool.

A row a store refuses (a value it cannot represent) must not cost the rest of its batch: the
whole batch is tried first, and only a failing one is halved until the refused rows stand alone;
those go to the dead-letter store with the reason and their values. A store that is down (disk,
permissions, connection) refuses every row alike, so nothing is split: the rows wait, and what
still waits at shutdown is spilled to a local spool that `replay_spool` writes back later.

Dead letters: JSON lines under `<log>/dead_letter/` (Parquet log) or table `dead_letter` (SQL).
Spool: `<spool>/<table>/<the log's folder>/part-*.parquet` (Parquet chunks, the log's layout) or
`<spool>/<table>/part-*.jsonl`; a spool of the earlier layout (`date=*` folders) is replayed too.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from prefect_mlops.prediction_log import (
    FeedbackRecord,
    LogStore,
    ParquetStore,
    PredictionRecord,
    SqlStore,
    Table,
)

DEAD_LETTER = "dead_letter"
_DEAD_LETTER_TABLE = sa.Table(
    DEAD_LETTER,
    sa.MetaData(),
    *(sa.Column(c, sa.Text) for c in ("table_name", "reason", "row_values")),
    sa.Column("timestamp", sa.Float),
)


@dataclass(frozen=True)
class DeadLetter:
    """A row the store refused: which table, why, and its original values."""

    table: str
    reason: str
    values: dict[str, Any]
    timestamp: float


@dataclass
class Outcome:
    """What one isolated write did: rows written, rows refused, chunks kept (store down)."""

    written: int = 0
    dead: list[DeadLetter] = field(default_factory=list)
    pending: list[Any] = field(default_factory=list)
    outage: str | None = None

    def add(self, other: Outcome) -> None:
        """Fold the outcome of one half into this one."""
        self.written += other.written
        self.dead += other.dead
        self.pending += other.pending
        self.outage = self.outage or other.outage


def is_outage(exc: BaseException) -> bool:
    """The store failed, not the rows: every row would fail alike, so keep them for retry."""
    return isinstance(exc, OSError | sa.exc.OperationalError | sa.exc.InterfaceError)


def prepare_rows(
    store: LogStore, table: Table, records: list[Any]
) -> tuple[list[Any], list[DeadLetter]]:
    """`store.prepare` on the whole batch; on failure, halve it until the bad rows are alone."""
    try:
        return store.prepare(table, records), []
    except Exception as exc:  # a value the store cannot represent: isolate it, keep the rest
        halves = _split_records(records)
        if not halves:
            return [], [DeadLetter(table, _reason(exc), _record_values(records[0]), time.time())]
        prepared: list[Any] = []
        dead: list[DeadLetter] = []
        for half in halves:
            more, refused = prepare_rows(store, table, half)
            prepared += more
            dead += refused
        return prepared, dead


def write_rows(store: LogStore, table: Table, prepared: list[Any]) -> Outcome:
    """`store.write` on all chunks; a data error halves them, an outage keeps them pending."""
    try:
        return Outcome(written=store.write(table, prepared))
    except Exception as exc:  # translated: outage -> pending, refused rows -> dead letters
        if is_outage(exc):
            return Outcome(pending=prepared, outage=_reason(exc))
        halves = _split_prepared(prepared)
        if not halves:
            now, reason = time.time(), _reason(exc)
            return Outcome(dead=[DeadLetter(table, reason, v, now) for v in _values(prepared)])
        outcome = Outcome()
        for half in halves:
            outcome.add(write_rows(store, table, half))
        return outcome


def log_isolated(store: LogStore, table: Table, records: list[Any]) -> Outcome:
    """Prepare and write one batch (batch scoring's path): refused rows are dead-lettered beside
    the log with their reason and the rest written; on an outage nothing is dead-lettered and
    the rows come back in `pending` (with `outage` set) for the caller to fail or retry."""
    prepared, refused = prepare_rows(store, table, records)
    outcome = write_rows(store, table, prepared) if prepared else Outcome()
    outcome.dead = refused + outcome.dead
    if outcome.dead:
        write_dead_letters(store, outcome.dead)
    return outcome


def write_dead_letters(store: LogStore, letters: list[DeadLetter]) -> int:
    """Append dead letters beside the log (raises like a write when the store is down)."""
    if isinstance(store, SqlStore):
        engine = store.connect()
        _DEAD_LETTER_TABLE.create(engine, checkfirst=True)
        with engine.begin() as connection:
            connection.execute(_DEAD_LETTER_TABLE.insert(), [_dead_letter_row(d) for d in letters])
        return len(letters)
    if isinstance(store, ParquetStore):
        return _write_json_lines(store.root / DEAD_LETTER, [asdict(d) for d in letters])
    raise TypeError(f"no dead-letter store for {type(store).__name__}")


def read_dead_letters(store: LogStore) -> list[DeadLetter]:
    """Every dead letter of a store, oldest first."""
    if isinstance(store, SqlStore):
        with store.connect().connect() as connection:
            _DEAD_LETTER_TABLE.create(connection, checkfirst=True)
            rows = connection.execute(sa.select(_DEAD_LETTER_TABLE)).mappings().all()
        return [
            DeadLetter(r["table_name"], r["reason"], json.loads(r["row_values"]), r["timestamp"])
            for r in rows
        ]
    if isinstance(store, ParquetStore):
        letters = [DeadLetter(**row) for row in _read_json_lines(store.root / DEAD_LETTER)]
        return sorted(letters, key=lambda d: d.timestamp)
    raise TypeError(f"no dead-letter store for {type(store).__name__}")


def spill(store: LogStore, table: str, prepared: list[Any]) -> int:
    """Write pending chunks to the store's local spool; the number of rows kept."""
    folder = store.spool_dir / table
    if table == DEAD_LETTER:
        return _write_json_lines(folder, [asdict(d) for d in prepared])
    if prepared and isinstance(prepared[0], tuple):  # Parquet chunks: (folder, Arrow table)
        return ParquetStore(store.spool_dir).write(table, prepared)  # type: ignore[arg-type]
    return _write_json_lines(folder, list(prepared))


def spooled_files(store: LogStore) -> list[Path]:
    """Spool files waiting to be replayed, oldest first."""
    if not store.spool_dir.exists():
        return []
    files = [
        *store.spool_dir.glob("*/part-*.jsonl"),
        *store.spool_dir.glob("*/*/**/part-*.parquet"),
    ]
    return sorted(files, key=lambda p: p.name)


def replay_spool(store: LogStore) -> dict[str, Outcome]:
    """Write spooled chunks into the store, file by file, stopping at the first outage; spooled
    dead letters (and rows refused now) come back in the outcomes' `dead` for the caller."""
    outcomes: dict[str, Outcome] = {}
    for path in spooled_files(store):
        table = path.relative_to(store.spool_dir).parts[0]
        outcome = outcomes.setdefault(table, Outcome())
        if table == DEAD_LETTER:  # handed back to the caller, who writes dead letters
            outcome.dead += [DeadLetter(**row) for row in _read_json_lines(path)]
            path.unlink()
            continue
        step = write_rows(store, table, _load_spooled(store, path))  # type: ignore[arg-type]
        if step.pending and not step.written and not step.dead:  # untouched: the file stays
            outcome.outage = step.outage
            return outcomes
        if step.pending:  # partly written: keep only what is left, never a row twice
            spill(store, table, step.pending)
        path.unlink()
        outcome.add(step)
        if step.outage:
            return outcomes
    return outcomes


def count_rows(prepared: list[Any]) -> int:
    """Rows held by prepared chunks of any store (or dead letters)."""
    return sum(c[1].num_rows if isinstance(c, tuple) else 1 for c in prepared)


def record_rows(record: PredictionRecord | FeedbackRecord) -> int:
    """Rows one record expands into."""
    return len(record.predictions) if isinstance(record, PredictionRecord) else 1


def _split_records(records: list[Any]) -> list[list[Any]]:
    if len(records) > 1:
        half = len(records) // 2
        return [records[:half], records[half:]]
    record = records[0]
    if isinstance(record, PredictionRecord) and len(record.predictions) > 1:
        half = len(record.predictions) // 2
        return [[_rows_of(record, 0, half)], [_rows_of(record, half, len(record.predictions))]]
    return []


def _rows_of(record: PredictionRecord, start: int, stop: int) -> PredictionRecord:
    """Rows `start:stop` of a record, keeping their row indexes."""
    probabilities = record.probabilities
    return record._replace(
        columns={name: values[start:stop] for name, values in record.columns.items()},
        predictions=record.predictions[start:stop],
        probabilities=None if probabilities is None else probabilities[start:stop],
        row_offset=record.row_offset + start,
    )


def _record_values(record: PredictionRecord | FeedbackRecord) -> dict[str, Any]:
    if isinstance(record, FeedbackRecord):
        return record._asdict()
    values = record._asdict()
    values["row_index"] = values.pop("row_offset")
    values["features"] = {name: column[0] for name, column in values.pop("columns").items()}
    values["prediction"] = values.pop("predictions")[0]
    values["probabilities"] = None if record.probabilities is None else record.probabilities[0]
    return values


def _split_prepared(prepared: list[Any]) -> list[list[Any]]:
    if len(prepared) > 1:
        half = len(prepared) // 2
        return [prepared[:half], prepared[half:]]
    if prepared and isinstance(prepared[0], tuple) and prepared[0][1].num_rows > 1:
        folder, chunk = prepared[0]
        half = chunk.num_rows // 2
        return [[(folder, chunk.slice(0, half))], [(folder, chunk.slice(half))]]
    return []


def _values(prepared: list[Any]) -> list[dict[str, Any]]:
    if prepared and isinstance(prepared[0], tuple):
        return [row for _, chunk in prepared for row in chunk.to_pylist()]
    return [dict(row) for row in prepared]


def _load_spooled(store: LogStore, path: Path) -> list[Any]:
    if path.suffix == ".parquet":  # its folder under the table is its folder in the log
        folder = path.parent.relative_to(
            store.spool_dir / path.relative_to(store.spool_dir).parts[0]
        )
        return [(folder.as_posix(), pq.read_table(path))]
    return _read_json_lines(path)


def _dead_letter_row(letter: DeadLetter) -> dict[str, Any]:
    return {
        "table_name": letter.table,
        "reason": letter.reason,
        "row_values": _plain_json(letter.values),
        "timestamp": letter.timestamp,
    }


def _write_json_lines(folder: Path, rows: list[dict[str, Any]]) -> int:
    """One new file of JSON lines, written atomically (hidden while it is written)."""
    folder.mkdir(parents=True, exist_ok=True)
    name = f"part-{time.time_ns()}-{uuid.uuid4().hex[:8]}.jsonl"
    tmp = folder / f".{name}.tmp"
    with tmp.open("w") as handle:
        handle.writelines(_plain_json(row) + "\n" for row in rows)
        handle.flush()
        os.fsync(handle.fileno())  # a spool that vanishes with the page cache saves nothing
    os.replace(tmp, folder / name)
    return len(rows)


def _read_json_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    files = sorted(path.glob("part-*.jsonl")) if path.is_dir() else [path]
    return [json.loads(line) for file in files for line in file.read_text().splitlines()]


def _plain_json(value: Any) -> str:
    """JSON of any logged value: integers of any size, numpy scalars and arrays included."""
    return json.dumps(value, default=_plain)


def _plain(value: Any) -> Any:
    if isinstance(value, pa.Scalar):
        return value.as_py()
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    return str(value)


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
