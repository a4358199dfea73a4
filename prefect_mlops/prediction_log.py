"""The prediction log: every prediction and label, shared by the service, scoring and monitoring.

Many models share one log; each model's rows are read back with that model's own features.

Parquet layout (one immutable file per write, written hidden then renamed):

    <root>/predictions/model=<name>/version=<version>/day=YYYY-MM-DD/source=<source>/part-*.parquet
    <root>/feedback/model=<name>/day=YYYY-MM-DD/part-*.parquet   (labels of that model's requests)
    <root>/feedback/day=YYYY-MM-DD/part-*.parquet                 (labels sent without a model)

The folder names are for pruning only: the reader lists files itself and never turns a folder
name into a column, and the features sit in a `features` struct, so a feature named `date`,
`model`, `day` or `source` reads back as sent. A model's window reads only that model's folders
(days before the window skipped), each file with its own schema, unified (an integer column that
later got a float, a column first all-null) instead of the first file's schema for every file.

Every row carries its `source`: `online` (the service), `batch` (the scoring flow) or `shadow`
(reserved). Monitoring reads `online` rows unless told otherwise, so a nightly scoring run does not
move the live window.

Every row also names its `arm`, the part of a rollout that produced it (prefect_mlops.rollout):
`champion` (the version the alias serves), `challenger` (a canary or A/B request the version under
rollout answered; source `online`) or `shadow` (the challenger's copy of a request, never returned;
source `shadow`). Batch scoring writes `champion`: it scores with the version it was given. Files
and tables written before the column existed read back as `champion`.

Logs of the earlier layout (`predictions/date=YYYY-MM-DD/`, `feedback/date=YYYY-MM-DD/`, every
model in one folder) are still read, filtered by their `model_name` column; their rows count as
`online` (that layout did not record a source).

Compaction: `ParquetStore.compact` merges the small files of each past day's folder into one
(the service's writer calls it hourly). The merged file names the files it replaces in its footer,
so a reader that lists the folder between the rename and the deletion skips the replaced files:
no row is ever read twice or missed; one compactor per folder at a time (a lock file).

SQL: tables `predictions` (features as JSON, `source` and `arm` added to a table of an earlier
schema) and `feedback` in any SQLAlchemy database; a model's rows are selected by `model_name`.

The log lives at `Settings().prediction_log_dir` unless a caller names another place.
"""

from __future__ import annotations

import json
import math
import os
import time
import uuid
from collections.abc import Collection, Iterator
from datetime import date, datetime
from itertools import chain
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import sqlalchemy as sa

from prefect_mlops.names import name_problem
from prefect_mlops.settings import Settings

# Request columns as the service holds them: one list of plain values per feature.
Columns = dict[str, list[Any]]

PREDICTION_COLUMNS = (
    "request_id",
    "row_index",
    "timestamp",
    "model_name",
    "model_version",
    "features",
    "prediction",
    "probabilities",
    "source",
)
FEEDBACK_COLUMNS = ("request_id", "row_index", "timestamp", "label")
Table = Literal["predictions", "feedback"]
LogSource = Literal["online", "batch", "shadow"]
SOURCES: tuple[LogSource, ...] = ("online", "batch", "shadow")
ONLINE: LogSource = "online"
# The arm of a rollout a row came from (the names of prefect_mlops.rollout.ARMS); not in
# PREDICTION_COLUMNS, whose order callers unpack.
ARM_COLUMN = "arm"
LogArm = Literal["champion", "challenger", "shadow"]
LOG_ARMS: tuple[LogArm, ...] = ("champion", "challenger", "shadow")
CHAMPION_ARM: LogArm = "champion"
# Folder keys of the Parquet layout, and the day key of the earlier layout.
MODEL_KEY, VERSION_KEY, DAY_KEY, SOURCE_KEY, LEGACY_DAY_KEY = (
    "model",
    "version",
    "day",
    "source",
    "date",
)
COMPACTED_PREFIX = "compact-"
_REPLACES = b"mlops.replaces"  # footer key: files a compacted file stands for
LOCK_SECONDS = 3600.0  # a compaction lock older than this was left by a crash


class LogValueError(ValueError):
    """A record the log cannot file: an unsafe model name or version, an unknown source."""


class PredictionRecord(NamedTuple):
    """One answered request, as references: expanded into rows off the request path."""

    request_id: str
    timestamp: float
    model_name: str
    model_version: str
    columns: Columns
    predictions: np.ndarray
    probabilities: np.ndarray | None
    row_offset: int = 0  # index of the first row: a record split to isolate a bad row keeps it
    source: str = ONLINE
    arm: str = CHAMPION_ARM  # champion, challenger or shadow (see the module docstring)


class FeedbackRecord(NamedTuple):
    """A ground-truth label for one row of an earlier request (of model `model_name`, if known)."""

    request_id: str
    row_index: int
    label: Any
    timestamp: float
    model_name: str = ""


class LogRead(NamedTuple):
    """One model's logged rows: bookkeeping, prediction and label; features apart (same index),
    so no feature name can collide with a bookkeeping column."""

    rows: pd.DataFrame
    features: pd.DataFrame


class LogStore(Protocol):
    """Where records go. `prepare` turns records into the store's compact form (off the GIL-
    hungry path, often); `write` appends prepared chunks, all of a call or none; `split` and
    `values` let `prefect_mlops.log_safety` isolate a row the store refuses."""

    spool_dir: Path

    def prepare(self, table: Table, records: list[Any]) -> list[Any]: ...

    def write(self, table: Table, prepared: list[Any]) -> int: ...

    def logged_rows(self, request_id: str) -> int:
        """How many rows of request `request_id` the log holds (0 when it is unknown)."""
        ...

    def append_predictions(self, records: list[PredictionRecord]) -> None:
        """Prepare and write in one call (tests; scoring goes through `log_safety`)."""
        self.write("predictions", self.prepare("predictions", records))

    def append_feedback(self, records: list[FeedbackRecord]) -> None:
        """Prepare and write labels in one call."""
        self.write("feedback", self.prepare("feedback", records))


class ParquetStore(LogStore):
    """The Parquet layout of the module docstring; prepared chunks are (folder, Arrow table).

    Features are kept as their own columns inside a `features` struct, built column by column,
    so prepared chunks hold Arrow buffers rather than Python objects the GC would have to scan.
    """

    def __init__(self, root: Path, spool_dir: Path | None = None) -> None:
        self.root = root
        self.spool_dir = spool_dir or root.with_name(f"{root.name}_spool")

    def prepare(self, table: Table, records: list[Any]) -> list[tuple[str, pa.Table]]:
        if table == "feedback":
            return [(folder, _feedback_table(group)) for folder, group in _by_folder(records)]
        return [(folder, _prediction_table(group)) for folder, group in _by_folder(records)]

    def write(self, table: Table, prepared: list[Any]) -> int:
        folders: dict[str, list[pa.Table]] = {}
        for folder, chunk in prepared:
            folders.setdefault(folder, []).append(chunk)
        rows = 0
        for folder, chunks in folders.items():
            combined = pa.concat_tables(chunks, promote_options="permissive")
            _write_file(self.root / table / folder, combined)
            rows += combined.num_rows
        return rows

    def logged_rows(self, request_id: str) -> int:
        files = _live_files_under(self.root / "predictions")
        if not files:
            return 0
        dataset = ds.dataset([str(f) for f in files], format="parquet")
        found = dataset.to_table(columns=["row_index"], filter=pc.field("request_id") == request_id)
        return int(pc.max(found["row_index"]).as_py()) + 1 if found.num_rows else 0

    def compact(self, before_day: str | None = None) -> int:
        """Merge the files of every folder of a day before `before_day` (today, UTC, if unset)
        into one file each; the number of files replaced."""
        today = before_day or _day_of(time.time())
        replaced = 0
        for table in ("predictions", "feedback"):
            for folder in _leaf_folders(self.root / table):
                day = _day_in(folder)
                if day is not None and day < today:
                    replaced += compact_folder(folder)
        return replaced


class SqlStore(LogStore):
    """Tables `predictions` and `feedback` in any SQLAlchemy database (features as JSON)."""

    def __init__(self, url: str, spool_dir: Path | None = None) -> None:
        self.url = url
        self.spool_dir = spool_dir or Settings().prediction_log_dir.with_name(
            "prediction_log_spool"
        )
        self.engine: sa.Engine | None = None
        self.meta = sa.MetaData()
        text, real = sa.Text, sa.Float
        sa.Table(
            "predictions",
            self.meta,
            *(sa.Column(c, text) for c in ("request_id", "model_name", "model_version")),
            sa.Column("row_index", sa.Integer),
            sa.Column("timestamp", real),
            *(sa.Column(c, text) for c in ("features", "prediction", "probabilities", "source")),
            sa.Column(ARM_COLUMN, text),
            sa.Column("feature_types", text),  # JSON {feature: "datetime"}: what JSON loses
        )
        sa.Table(
            "feedback",
            self.meta,
            sa.Column("request_id", text),
            sa.Column("row_index", sa.Integer),
            sa.Column("timestamp", real),
            sa.Column("label", text),
        )

    def prepare(self, table: Table, records: list[Any]) -> list[dict[str, Any]]:
        if table == "predictions":
            return [row for r in records for row in _prediction_rows(r)]
        return [
            {"request_id": r.request_id, "row_index": r.row_index, "timestamp": r.timestamp}
            | {"label": _json(r.label)}
            for r in records
        ]

    def write(self, table: Table, prepared: list[Any]) -> int:
        with self.connect().begin() as connection:
            connection.execute(self.meta.tables[table].insert(), prepared)
        return len(prepared)

    def logged_rows(self, request_id: str) -> int:
        column = self.meta.tables["predictions"].c
        query = sa.select(sa.func.max(column.row_index)).where(column.request_id == request_id)
        with self.connect().connect() as connection:
            last = connection.execute(query).scalar()
        return 0 if last is None else int(last) + 1

    def connect(self) -> sa.Engine:
        """The engine, created with the log's tables on first use (a `predictions` table of the
        earlier schema gets its `source`, `feature_types` and `arm` columns; its rows read as
        online rows of the champion)."""
        if self.engine is None:  # connect on first use, so a down database never stops start-up
            engine = sa.create_engine(self.url)
            self.meta.create_all(engine)
            columns = {c["name"] for c in sa.inspect(engine).get_columns("predictions")}
            with engine.begin() as connection:  # a log of the earlier schema gets the columns
                for added in ("source", "feature_types", ARM_COLUMN):
                    if added not in columns:
                        connection.execute(
                            sa.text(f"ALTER TABLE predictions ADD COLUMN {added} TEXT")
                        )
            self.engine = engine
        return self.engine


def open_store(url: str | None, directory: Path, spool_dir: Path | None = None) -> LogStore:
    """A SQL store when a SQLAlchemy URL is configured, else the Parquet dataset; pending rows
    spill to `spool_dir` (next to the log when unset) when the store is down at shutdown."""
    if url:
        return SqlStore(url, spool_dir or directory.with_name(f"{directory.name}_spool"))
    return ParquetStore(directory, spool_dir)


# --- writing ---------------------------------------------------------------------------------


def _day_of(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(timestamp))


def _key_value(key: str, value: str) -> str:
    """`key=value`, refusing a value that is not one safe path component."""
    problem = name_problem(value)
    if problem is not None:
        raise LogValueError(f"{key} {value!r} {problem}")
    return f"{key}={value}"


def record_folder(record: PredictionRecord | FeedbackRecord) -> str:
    """The folder (relative to its table) a record is filed under."""
    day = f"{DAY_KEY}={_day_of(record.timestamp)}"
    if isinstance(record, FeedbackRecord):
        if not record.model_name:
            return day
        return f"{_key_value(MODEL_KEY, record.model_name)}/{day}"
    _check_source_and_arm(record)
    model = _key_value(MODEL_KEY, record.model_name)
    version = _key_value(VERSION_KEY, str(record.model_version))
    return f"{model}/{version}/{day}/{SOURCE_KEY}={record.source}"


def _check_source_and_arm(record: PredictionRecord) -> None:
    if record.source not in SOURCES:
        raise LogValueError(f"source {record.source!r} is not one of {list(SOURCES)}")
    if record.arm not in LOG_ARMS:
        raise LogValueError(f"arm {record.arm!r} is not one of {list(LOG_ARMS)}")


def _by_folder(records: list[Any]) -> list[tuple[str, list[Any]]]:
    """Records grouped by folder (one model version, day and source: one column set), with or
    without probabilities apart."""
    groups: dict[tuple[str, bool], list[Any]] = {}
    for record in records:
        probabilities = getattr(record, "probabilities", None) is None
        groups.setdefault((record_folder(record), probabilities), []).append(record)
    return [(folder, group) for (folder, _), group in groups.items()]


def _write_file(folder: Path, table: pa.Table, prefix: str = "part-") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{prefix}{time.time_ns()}-{uuid.uuid4().hex[:8]}.parquet"
    tmp = folder / f".{name}.tmp"  # hidden: readers skip it while it is written
    pq.write_table(table, tmp)
    os.replace(tmp, folder / name)
    return folder / name


def _feature_array(values: list[Any]) -> pa.Array:
    """One feature column; NaN, NaT and None are nulls whatever the column's type."""
    return pa.array(values, from_pandas=True)


def _prediction_table(records: list[PredictionRecord]) -> pa.Table:
    """One Arrow table for records sharing a column set, built column by column."""
    counts = [len(r.predictions) for r in records]
    names = list(records[0].columns)
    features = pa.StructArray.from_arrays(
        [_feature_array(list(chain.from_iterable(r.columns[n] for r in records))) for n in names],
        names=names,
    )
    data: dict[str, Any] = {
        "request_id": _repeat([r.request_id for r in records], counts),
        "row_index": np.concatenate(
            [r.row_offset + np.arange(len(r.predictions)) for r in records]
        ),
        "timestamp": _repeat([r.timestamp for r in records], counts),
        "model_name": _repeat([r.model_name for r in records], counts),
        "model_version": _repeat([str(r.model_version) for r in records], counts),
        "features": features,
        "prediction": pa.array(np.concatenate([r.predictions for r in records]), from_pandas=True),
        "source": _repeat([r.source for r in records], counts),
        ARM_COLUMN: _repeat([r.arm for r in records], counts),
    }
    if records[0].probabilities is not None:
        matrix = np.concatenate([r.probabilities for r in records])
        data["probabilities"] = pa.array(list(matrix))
    return pa.table(data)


def _prediction_rows(record: PredictionRecord) -> list[dict[str, Any]]:
    _check_source_and_arm(record)
    names = list(record.columns)
    predictions = record.predictions.tolist()
    probabilities = record.probabilities.tolist() if record.probabilities is not None else None
    datetimes = {n: "datetime" for n in names if _holds_datetimes(record.columns[n])}
    feature_types = _json(datetimes) if datetimes else None
    return [
        {
            "request_id": record.request_id,
            "row_index": record.row_offset + index,
            "timestamp": record.timestamp,
            "model_name": record.model_name,
            "model_version": str(record.model_version),
            "features": _json(dict(zip(names, values, strict=True))),
            "prediction": _json(predictions[index]),
            "probabilities": None if probabilities is None else _json(probabilities[index]),
            "source": record.source,
            ARM_COLUMN: record.arm,
            "feature_types": feature_types,
        }
        for index, values in enumerate(zip(*(record.columns[n] for n in names), strict=True))
    ]


def _holds_datetimes(values: list[Any]) -> bool:
    """The column's first present value is a date or time (JSON keeps it as text)."""
    present = next((v for v in values if v is not None and v is not pd.NaT), None)
    return isinstance(present, datetime | date | np.datetime64)


def _feedback_table(records: list[FeedbackRecord]) -> pa.Table:
    return pa.table(
        {
            "request_id": [r.request_id for r in records],
            "row_index": pa.array([r.row_index for r in records], pa.int64()),
            "timestamp": pa.array([r.timestamp for r in records], pa.float64()),
            "label": [_json(r.label) for r in records],
        }
    )


def _repeat(values: list[Any], counts: list[int]) -> pa.Array:
    if all(c == 1 for c in counts):
        return pa.array(values)
    return pa.array(np.repeat(np.array(values, dtype=object), counts).tolist())


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY, default=_json_default).decode()


def _json_default(value: Any) -> Any:
    """Values orjson leaves to us: missing datetimes are null, datetimes ISO text."""
    if value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, datetime | date | pd.Timestamp):
        return value.isoformat()
    return str(value)


# --- files: listing and compaction -----------------------------------------------------------


def _data_files(folder: Path) -> list[Path]:
    """Written files of one folder (hidden files being written are skipped), oldest first."""
    if not folder.is_dir():
        return []
    names = (p for p in folder.iterdir() if p.suffix == ".parquet" and p.is_file())
    return sorted(
        (p for p in names if p.name.startswith(("part-", COMPACTED_PREFIX))),
        key=lambda p: p.name.split("-", 1)[1],
    )


def _live_files(folder: Path) -> list[Path]:
    """Files of a folder, without those a compacted file already stands for."""
    files = _data_files(folder)
    replaced: set[str] = set()
    for path in files:
        if path.name.startswith(COMPACTED_PREFIX):
            metadata = pq.read_schema(path).metadata or {}
            replaced |= set(json.loads(metadata.get(_REPLACES, b"[]")))
    return [p for p in files if p.name not in replaced]


def _leaf_folders(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted({p.parent for p in root.rglob("*.parquet")})


def _live_files_under(root: Path) -> list[Path]:
    return [f for folder in _leaf_folders(root) for f in _live_files(folder)]


def _day_in(folder: Path) -> str | None:
    """The day a folder holds (`day=` or the earlier layout's `date=`), if any."""
    for part in folder.parts:
        key, _, value = part.partition("=")
        if key in (DAY_KEY, LEGACY_DAY_KEY) and value:
            return value
    return None


def compact_folder(folder: Path) -> int:
    """Merge a folder's files into one (atomically for readers); the number of files replaced.

    Skipped while another compaction holds the folder's lock; a lock left by a crash expires.
    """
    lock = folder / ".compact.lock"
    try:
        handle = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        if time.time() - lock.stat().st_mtime < LOCK_SECONDS:
            return 0
        lock.unlink(missing_ok=True)
        return compact_folder(folder)
    os.close(handle)
    try:
        files = _data_files(folder)
        live = _live_files(folder)
        if len(live) <= 1 and len(files) == len(live):
            return 0
        tables = [pq.read_table(f) for f in live]
        merged = (
            _concat_files(tables)
            if "features" in tables[0].column_names
            else (pa.concat_tables(tables, promote_options="permissive"))
        )
        names = [f.name for f in files]  # leftovers of an interrupted compaction included
        merged = merged.replace_schema_metadata({_REPLACES: json.dumps(names).encode()})
        _write_file(folder, merged, prefix=COMPACTED_PREFIX)
        for path in files:
            path.unlink(missing_ok=True)
        return len(files)
    finally:
        lock.unlink(missing_ok=True)


# --- reading ---------------------------------------------------------------------------------


def read_model_log(
    model_name: str,
    url: str | None = None,
    directory: Path | None = None,
    labels: pd.DataFrame | None = None,
    since: float | None = None,
    sources: Collection[str] | None = None,
) -> LogRead:
    """The logged predictions of one model (made after `since`, of `sources`; all when unset)
    with the latest label joined on, and its features with their own types.

    Labels come from `/feedback` and, optionally, from `labels` (a labels file or table read
    by the caller: `request_id`, `label` and optionally `row_index`); the latest one wins.
    """
    wanted = set(sources) if sources is not None else None
    if url:
        predictions, features, feedback = _sql_model_log(url, model_name, since, wanted)
    else:
        root = Path(directory) if directory else Settings().prediction_log_dir
        table = _parquet_predictions(root, model_name, since, wanted)
        features = _struct_frame(table.column("features"))
        predictions = table.drop_columns(["features"]).to_pandas()
        feedback = _parquet_feedback(root, model_name, since)
    predictions["timestamp"] = pd.to_datetime(predictions["timestamp"], unit="s", utc=True)
    rows = _join_labels(predictions, feedback, labels)
    return LogRead(rows, features.set_axis(rows.index))


def read_prediction_log(
    url: str | None = None,
    directory: Path | None = None,
    labels: pd.DataFrame | None = None,
    model_name: str | None = None,
    since: float | None = None,
    sources: Collection[str] | None = None,
) -> pd.DataFrame:
    """Logged predictions (of one model, or of every model), one column per feature, with the
    latest label joined on. A feature named like a bookkeeping column is `features.<name>`
    here (`read_model_log` keeps features apart)."""
    names = [model_name] if model_name else logged_models(url, directory)
    frames = [_flat(read_model_log(name, url, directory, labels, since, sources)) for name in names]
    if not frames:
        return pd.DataFrame(columns=[*PREDICTION_COLUMNS, ARM_COLUMN, "label"])
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def last_logged(
    model_name: str,
    url: str | None = None,
    directory: Path | None = None,
    sources: Collection[str] | None = None,
) -> float | None:
    """When the model's latest prediction (of `sources`; any when unset) was logged, or None when
    the log holds none of it. Reads only the timestamps of the latest day that has any: it tells
    a quiet window from a log the model was never written to."""
    wanted = set(sources) if sources is not None else None
    if url:
        return _sql_last_logged(url, model_name, wanted)
    root = (Path(directory) if directory else Settings().prediction_log_dir) / "predictions"
    days: dict[str, list[Path]] = {}
    for folder in (root / f"{MODEL_KEY}={model_name}").glob(f"{VERSION_KEY}=*/{DAY_KEY}=*/*"):
        if wanted is None or folder.name.removeprefix(f"{SOURCE_KEY}=") in wanted:
            days.setdefault(folder.parent.name, []).append(folder)
    # lazily, day by day: only the latest day that has rows is read
    latest: Iterator[list[pa.Table]] = (
        [pq.read_table(f, columns=["timestamp"]) for d in days[day] for f in _live_files(d)]
        for day in sorted(days, reverse=True)
    )
    if wanted is None or ONLINE in wanted:  # the earlier layout's rows are older than any other
        latest = chain(
            latest,
            (
                [_legacy_predictions(f, model_name) for f in _live_files(folder)]
                for folder in sorted(root.glob(f"{LEGACY_DAY_KEY}=*"), reverse=True)
            ),
        )
    for tables in latest:
        stamps = [pc.max(t["timestamp"]).as_py() for t in tables if t.num_rows]
        if stamps:
            return float(max(stamps))
    return None


def _sql_last_logged(url: str, model_name: str, sources: set[str] | None) -> float | None:
    engine = sa.create_engine(url)
    try:
        if not sa.inspect(engine).has_table("predictions"):
            return None
        table = sa.Table("predictions", sa.MetaData(), autoload_with=engine)
        query = sa.select(sa.func.max(table.c.timestamp)).where(table.c.model_name == model_name)
        if sources is not None:
            source = (
                sa.func.coalesce(table.c.source, ONLINE)
                if "source" in table.c
                else sa.literal(ONLINE)
            )
            query = query.where(source.in_(sorted(sources)))
        with engine.connect() as connection:
            last = connection.execute(query).scalar()
    finally:
        engine.dispose()
    return None if last is None else float(last)


def logged_models(url: str | None = None, directory: Path | None = None) -> list[str]:
    """Names of the models the log holds rows of."""
    if url:
        engine = sa.create_engine(url)
        if not sa.inspect(engine).has_table("predictions"):
            return []
        with engine.connect() as connection:
            query = sa.text("SELECT DISTINCT model_name FROM predictions ORDER BY model_name")
            return [str(name) for name in connection.execute(query).scalars()]
    root = (Path(directory) if directory else Settings().prediction_log_dir) / "predictions"
    if not root.is_dir():
        return []
    names = {p.name.removeprefix(f"{MODEL_KEY}=") for p in root.glob(f"{MODEL_KEY}=*")}
    for folder in root.glob(f"{LEGACY_DAY_KEY}=*"):
        for path in _live_files(folder):
            names |= set(pq.read_table(path, columns=["model_name"])["model_name"].to_pylist())
    return sorted(names)


def _flat(read: LogRead) -> pd.DataFrame:
    renamed = {c: f"features.{c}" for c in read.features.columns if c in read.rows.columns}
    return pd.concat([read.rows, read.features.rename(columns=renamed)], axis=1)


def _empty_predictions() -> pa.Table:
    return pa.table(
        {
            "request_id": pa.array([], pa.string()),
            "row_index": pa.array([], pa.int64()),
            "timestamp": pa.array([], pa.float64()),
            "model_name": pa.array([], pa.string()),
            "model_version": pa.array([], pa.string()),
            "features": pa.array([], pa.struct([])),
            "prediction": pa.array([], pa.float64()),
            "source": pa.array([], pa.string()),
            ARM_COLUMN: pa.array([], pa.string()),
        }
    )


def _parquet_predictions(
    root: Path, model_name: str, since: float | None, sources: set[str] | None
) -> pa.Table:
    """The model's files only (days before `since` and other sources not even opened), each
    read with its own schema, then unified; the earlier layout's files filtered by model."""
    first_day = _day_of(since) if since is not None else None
    tables: list[pa.Table] = []
    # the earlier layout first: its rows are older than any of the new one
    for folder in sorted((root / "predictions").glob(f"{LEGACY_DAY_KEY}=*")):
        if first_day and folder.name.removeprefix(f"{LEGACY_DAY_KEY}=") < first_day:
            continue
        if sources is None or ONLINE in sources:
            tables += [_legacy_predictions(f, model_name) for f in _live_files(folder)]
    base = root / "predictions" / f"{MODEL_KEY}={model_name}"
    for day_folder in sorted(base.glob(f"{VERSION_KEY}=*/{DAY_KEY}=*")):
        if first_day and day_folder.name.removeprefix(f"{DAY_KEY}=") < first_day:
            continue
        for folder in sorted(day_folder.glob(f"{SOURCE_KEY}=*")):
            if sources is None or folder.name.removeprefix(f"{SOURCE_KEY}=") in sources:
                tables += [pq.read_table(f) for f in _live_files(folder)]
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return _empty_predictions()
    table = tables[0] if len(tables) == 1 else _concat_files(tables)
    if since is not None:
        table = table.filter(pc.field("timestamp") > since)
    return _with_arm(table)


def _with_arm(table: pa.Table) -> pa.Table:
    """Rows of files written before the `arm` column (or concatenated with them) as champion's."""
    if ARM_COLUMN not in table.column_names:
        return table.append_column(
            ARM_COLUMN, pa.array([CHAMPION_ARM] * table.num_rows, pa.string())
        )
    arms = table.column(ARM_COLUMN)
    if arms.null_count == 0 and not pa.types.is_null(arms.type):
        return table
    filled = pc.fill_null(arms.cast(pa.string()), CHAMPION_ARM)
    return table.set_column(table.schema.get_field_index(ARM_COLUMN), ARM_COLUMN, filled)


def _concat_files(tables: list[pa.Table]) -> pa.Table:
    """Files of one model in one table, types unified (int and float give float, a column all
    null takes the other files' type); a feature whose files disagree beyond that (text in one,
    numbers in another) is read as text rather than failing the whole window."""
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        kinds: dict[str, set[pa.DataType]] = {}
        for table in tables:
            for field in table.schema.field("features").type:
                if not pa.types.is_null(field.type):
                    kinds.setdefault(field.name, set()).add(field.type)
        mixed = {name for name, types in kinds.items() if len(types) > 1}
        return pa.concat_tables(
            [_features_as_text(t, mixed) for t in tables], promote_options="permissive"
        )


def _features_as_text(table: pa.Table, names: set[str]) -> pa.Table:
    struct = table.column("features").combine_chunks()
    fields = [struct.type.field(i) for i in range(struct.type.num_fields)]
    arrays = [
        struct.field(i).cast(pa.string()) if f.name in names else struct.field(i)
        for i, f in enumerate(fields)
    ]
    features = pa.StructArray.from_arrays(arrays, names=[f.name for f in fields])
    return table.set_column(table.schema.get_field_index("features"), "features", features)


def _legacy_predictions(path: Path, model_name: str) -> pa.Table:
    """A file of the earlier layout: the model's rows, counted as online."""
    table = pq.read_table(path, filters=[("model_name", "==", model_name)])
    if "source" not in table.column_names:
        table = table.append_column("source", pa.array([ONLINE] * table.num_rows, pa.string()))
    return table


def _parquet_feedback(root: Path, model_name: str, since: float | None) -> pd.DataFrame:
    """Labels of the model's requests, those sent without a model, and the earlier layout's;
    a label arrives after its prediction, so days before `since` are skipped."""
    first_day = _day_of(since) if since is not None else None
    folder = root / "feedback"
    candidates = [
        *folder.glob(f"{MODEL_KEY}={model_name}/{DAY_KEY}=*"),
        *folder.glob(f"{DAY_KEY}=*"),
        *folder.glob(f"{LEGACY_DAY_KEY}=*"),
    ]
    files = [
        f
        for day in candidates
        if not first_day or (_day_in(day) or "") >= first_day
        for f in _live_files(day)
    ]
    if not files:
        return _empty_feedback()
    tables = [pq.read_table(f, columns=list(FEEDBACK_COLUMNS)) for f in files]
    return pa.concat_tables(tables, promote_options="permissive").to_pandas()


def _empty_feedback() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "request_id": pd.Series([], dtype=object),
            "row_index": pd.Series([], dtype="int64"),
            "timestamp": pd.Series([], dtype="float64"),
            "label": pd.Series([], dtype=object),
        }
    )


def _sql_model_log(
    url: str, model_name: str, since: float | None, sources: set[str] | None
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The model's rows only; read as they are (nothing created: a log of the earlier schema,
    without `source`, reads as online)."""
    engine = sa.create_engine(url)
    meta = sa.MetaData()
    table = sa.Table("predictions", meta, autoload_with=engine)  # NoSuchTableError names it
    feedback_table = sa.Table("feedback", meta, autoload_with=engine)
    source = sa.func.coalesce(table.c.source, ONLINE) if "source" in table.c else sa.literal(ONLINE)
    arm = (
        sa.func.coalesce(table.c[ARM_COLUMN], CHAMPION_ARM)
        if ARM_COLUMN in table.c
        else sa.literal(CHAMPION_ARM)
    )
    kept = [c for c in table.c if c.name not in ("source", "feature_types", ARM_COLUMN)]
    types = table.c.feature_types if "feature_types" in table.c else sa.null()
    query = sa.select(
        *kept, source.label("source"), arm.label(ARM_COLUMN), types.label("feature_types")
    )
    query = query.where(table.c.model_name == model_name)
    if since is not None:
        query = query.where(table.c.timestamp > since)
    if sources is not None:
        query = query.where(source.in_(sorted(sources)))
    requests = sa.select(table.c.request_id).where(table.c.model_name == model_name)
    labels = sa.select(*(feedback_table.c[c] for c in FEEDBACK_COLUMNS)).where(
        feedback_table.c.request_id.in_(requests)
    )
    with engine.connect() as connection:
        predictions = pd.read_sql(query, connection)
        feedback = pd.read_sql(labels, connection)
    engine.dispose()
    features = (  # pandas refuses an index for no records: a quiet window reads as no rows
        pd.DataFrame.from_records(
            [orjson.loads(f) for f in predictions["features"]], index=range(len(predictions))
        )
        if len(predictions)
        else pd.DataFrame(index=range(0))
    )
    for kinds in predictions["feature_types"].dropna().unique():
        for name in orjson.loads(kinds):
            features[name] = pd.to_datetime(features[name])
    predictions = predictions.drop(columns=["features", "feature_types"])
    predictions["prediction"] = [orjson.loads(p) for p in predictions["prediction"]]
    return predictions, features, feedback


def _join_labels(
    predictions: pd.DataFrame, feedback: pd.DataFrame, labels: pd.DataFrame | None
) -> pd.DataFrame:
    known = feedback.assign(label=[orjson.loads(v) for v in feedback["label"]])
    if labels is not None:
        extra = labels.assign(
            row_index=labels.get("row_index", 0),
            timestamp=labels.get("timestamp", math.inf),
        )
        known = pd.concat([known, extra[list(FEEDBACK_COLUMNS)]], ignore_index=True)
    latest = known.sort_values("timestamp", kind="stable").drop_duplicates(
        ["request_id", "row_index"], keep="last"
    )
    joined = predictions.reset_index(drop=True).merge(
        latest[["request_id", "row_index", "label"]], on=["request_id", "row_index"], how="left"
    )
    return joined.reset_index(drop=True)


def _struct_frame(column: pa.ChunkedArray) -> pd.DataFrame:
    struct = column.combine_chunks()
    return pd.DataFrame(
        {field.name: struct.field(i).to_pandas() for i, field in enumerate(struct.type)},
        index=range(len(struct)),
    )
