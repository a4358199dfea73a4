"""The prediction log: every prediction and label, shared by the service, scoring and monitoring.

Records are appended to a Parquet dataset partitioned by day (one immutable file per write) or to
a SQL database; files and committed rows already written are never touched again. The log lives
at `Settings().prediction_log_dir` unless a caller names another place.
"""

from __future__ import annotations

import os
import time
import uuid
from itertools import chain
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa

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
)
FEEDBACK_COLUMNS = ("request_id", "row_index", "timestamp", "label")
Table = Literal["predictions", "feedback"]


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


class FeedbackRecord(NamedTuple):
    """A ground-truth label for one row of an earlier request."""

    request_id: str
    row_index: int
    label: Any
    timestamp: float


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
        """Prepare and write in one call (batch scoring, tests)."""
        self.write("predictions", self.prepare("predictions", records))

    def append_feedback(self, records: list[FeedbackRecord]) -> None:
        """Prepare and write labels in one call."""
        self.write("feedback", self.prepare("feedback", records))


class ParquetStore(LogStore):
    """`<root>/{predictions,feedback}/date=YYYY-MM-DD/part-*.parquet`, files written atomically.

    Features are kept as their own columns inside a `features` struct, built column by column,
    so prepared chunks hold Arrow buffers rather than Python objects the GC would have to scan.
    """

    def __init__(self, root: Path, spool_dir: Path | None = None) -> None:
        self.root = root
        self.spool_dir = spool_dir or root.with_name(f"{root.name}_spool")

    def prepare(self, table: Table, records: list[Any]) -> list[tuple[str, pa.Table]]:
        if table == "feedback":
            return [(day, _feedback_table(group)) for day, group in _by_day(records).items()]
        return [
            (day, _prediction_table(same))
            for day, group in _by_day(records).items()
            for same in _by_model(group)
        ]

    def write(self, table: Table, prepared: list[Any]) -> int:
        days: dict[str, list[pa.Table]] = {}
        for day, chunk in prepared:
            days.setdefault(day, []).append(chunk)
        rows = 0
        for day, chunks in days.items():
            combined = pa.concat_tables(chunks, promote_options="default")
            self._write_file(table, day, combined)
            rows += combined.num_rows
        return rows

    def logged_rows(self, request_id: str) -> int:
        folder = self.root / "predictions"
        if not folder.exists():
            return 0
        found = pq.read_table(
            folder, columns=["row_index"], filters=[("request_id", "==", request_id)]
        )
        return int(pc.max(found["row_index"]).as_py()) + 1 if found.num_rows else 0

    def _write_file(self, table_name: str, day: str, table: pa.Table) -> None:
        folder = self.root / table_name / f"date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"part-{time.time_ns()}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = folder / f".{name}.tmp"  # hidden: dataset readers skip it while it is written
        pq.write_table(table, tmp)
        os.replace(tmp, folder / name)


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

    def prepare(self, table: Table, records: list[Any]) -> list[dict[str, Any]]:
        if table == "predictions":
            return [row for r in records for row in _prediction_rows(r)]
        return [{**r._asdict(), "label": _json(r.label)} for r in records]

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
        """The engine, created with the log's tables on first use."""
        if self.engine is None:  # connect on first use, so a down database never stops start-up
            engine = sa.create_engine(self.url)
            self.meta.create_all(engine)
            self.engine = engine
        return self.engine


def open_store(url: str | None, directory: Path, spool_dir: Path | None = None) -> LogStore:
    """A SQL store when a SQLAlchemy URL is configured, else the Parquet dataset; pending rows
    spill to `spool_dir` (next to the log when unset) when the store is down at shutdown."""
    if url:
        return SqlStore(url, spool_dir or directory.with_name(f"{directory.name}_spool"))
    return ParquetStore(directory, spool_dir)


def _by_day(records: list[Any]) -> dict[str, list[Any]]:
    days: dict[int, list[Any]] = {}
    for record in records:
        days.setdefault(int(record.timestamp // 86400), []).append(record)
    return {
        time.strftime("%Y-%m-%d", time.gmtime(day * 86400)): group for day, group in days.items()
    }


def _by_model(records: list[PredictionRecord]) -> list[list[PredictionRecord]]:
    """Records of one model version share one column set."""
    groups: dict[tuple[Any, ...], list[PredictionRecord]] = {}
    for record in records:
        key = (record.model_name, record.model_version, record.probabilities is None)
        groups.setdefault(key, []).append(record)
    return list(groups.values())


def _prediction_table(records: list[PredictionRecord]) -> pa.Table:
    """One Arrow table for records sharing a column set, built column by column."""
    counts = [len(r.predictions) for r in records]
    names = list(records[0].columns)
    features = pa.StructArray.from_arrays(
        [pa.array(list(chain.from_iterable(r.columns[n] for r in records))) for n in names],
        names=names,
    )
    data: dict[str, Any] = {
        "request_id": _repeat([r.request_id for r in records], counts),
        "row_index": np.concatenate(
            [r.row_offset + np.arange(len(r.predictions)) for r in records]
        ),
        "timestamp": _repeat([r.timestamp for r in records], counts),
        "model_name": _repeat([r.model_name for r in records], counts),
        "model_version": _repeat([r.model_version for r in records], counts),
        "features": features,
        "prediction": pa.array(np.concatenate([r.predictions for r in records])),
    }
    if records[0].probabilities is not None:
        matrix = np.concatenate([r.probabilities for r in records])
        data["probabilities"] = pa.array(list(matrix))
    return pa.table(data)


def _prediction_rows(record: PredictionRecord) -> list[dict[str, Any]]:
    names = list(record.columns)
    predictions = record.predictions.tolist()
    probabilities = record.probabilities.tolist() if record.probabilities is not None else None
    return [
        {
            "request_id": record.request_id,
            "row_index": record.row_offset + index,
            "timestamp": record.timestamp,
            "model_name": record.model_name,
            "model_version": record.model_version,
            "features": _json(dict(zip(names, values, strict=True))),
            "prediction": _json(predictions[index]),
            "probabilities": None if probabilities is None else _json(probabilities[index]),
        }
        for index, values in enumerate(zip(*(record.columns[n] for n in names), strict=True))
    ]


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
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY, default=str).decode()


def read_prediction_log(
    url: str | None = None, directory: Path | None = None, labels: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Every logged prediction, one column per feature, with the latest label joined on.

    Labels come from `/feedback` and, optionally, from `labels` (a labels file or table read
    by the caller: `request_id`, `label` and optionally `row_index`); the latest one wins.
    """
    if url:
        engine = sa.create_engine(url)
        predictions = pd.read_sql_table("predictions", engine)
        feedback = pd.read_sql_table("feedback", engine)
        features = pd.DataFrame([orjson.loads(f) for f in predictions["features"]])
        predictions = predictions.drop(columns=["features"])
        predictions["prediction"] = [orjson.loads(p) for p in predictions["prediction"]]
    else:
        root = Path(directory) if directory else Settings().prediction_log_dir
        if not (root / "predictions").exists():
            return pd.DataFrame(columns=[*PREDICTION_COLUMNS, "label"])
        table = pq.read_table(root / "predictions")
        features = _struct_frame(table.column("features"))
        predictions = table.drop_columns(["features"]).to_pandas()
        feedback = (
            pq.read_table(root / "feedback").to_pandas()
            if (root / "feedback").exists()
            else pd.DataFrame({c: [] for c in FEEDBACK_COLUMNS})
        )
    predictions["timestamp"] = pd.to_datetime(predictions["timestamp"], unit="s", utc=True)
    known = feedback.assign(label=[orjson.loads(v) for v in feedback["label"]])
    if labels is not None:
        extra = labels.assign(
            row_index=labels.get("row_index", 0),
            timestamp=labels.get("timestamp", float("inf")),
        )
        known = pd.concat([known, extra[list(FEEDBACK_COLUMNS)]], ignore_index=True)
    latest = known.sort_values("timestamp", kind="stable").drop_duplicates(
        ["request_id", "row_index"], keep="last"
    )
    joined = pd.concat([predictions.reset_index(drop=True), features], axis=1)
    return joined.merge(
        latest[["request_id", "row_index", "label"]], on=["request_id", "row_index"], how="left"
    )


def _struct_frame(column: pa.ChunkedArray) -> pd.DataFrame:
    struct = column.combine_chunks()
    return pd.DataFrame(
        {field.name: struct.field(i).to_pandas() for i, field in enumerate(struct.type)}
    )
