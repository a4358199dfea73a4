"""Ingest: read a CSV, Parquet or SQL source and freeze it as a fingerprinted Parquet snapshot."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa
from prefect import task

from prefect_mlops.config import SourceConfig, WindowConfig
from prefect_mlops.errors import IngestError
from prefect_mlops.io import write_parquet_atomic
from prefect_mlops.results import Snapshot
from tasks.policies import IO_RETRIES, RELEASES_MEMORY


def read_source(source: SourceConfig) -> pd.DataFrame:
    """Load every row of a source into a DataFrame, translating failures into IngestError."""
    where = source.describe()
    if source.kind == "sql":
        frame = _read_sql(source)
    else:
        path = Path(str(source.path))
        if not path.is_file():
            raise IngestError(f"{source.kind} source not found: {path}")
        try:
            frame = pd.read_csv(path) if source.kind == "csv" else pd.read_parquet(path)
        except pd.errors.EmptyDataError as exc:
            raise IngestError(f"{source.kind} source {path} is empty") from exc
        except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
            raise IngestError(f"cannot read {source.kind} source {path}: {exc}") from exc
    if frame.empty:
        raise IngestError(f"source {where} has no rows")
    if frame.columns.duplicated().any():
        dupes = sorted(set(frame.columns[frame.columns.duplicated()]))
        raise IngestError(f"source {where} has duplicated columns {dupes}")
    return frame


def _read_sql(source: SourceConfig) -> pd.DataFrame:
    engine = sa.create_engine(str(source.url))
    try:
        with engine.connect() as connection:
            if source.table:
                if not sa.inspect(connection).has_table(source.table):
                    raise IngestError(
                        f"table {source.table!r} not found in database {source.describe()}"
                    )
                return pd.read_sql_table(source.table, connection)
            return pd.read_sql_query(sa.text(str(source.query)), connection)
    except sa.exc.SQLAlchemyError as exc:
        raise IngestError(f"cannot read sql source {source.describe()}: {exc}") from exc
    finally:
        engine.dispose()


COPY_CHUNK_BYTES = 1 << 20


def fingerprint_frame(frame: pd.DataFrame) -> str:
    """A content hash of columns, dtypes and every value; the same rows give the same hash.

    Snapshots of CSV and SQL sources (and windows) are named by it; a whole Parquet source is
    named by the hash of its bytes instead (`freeze_parquet_file`).
    """
    digest = hashlib.sha256()
    digest.update(repr([(str(c), str(t)) for c, t in frame.dtypes.items()]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:20]


def freeze_parquet_file(path: Path, snapshot_dir: Path, describe: str) -> Snapshot:
    """Snapshot a Parquet file as it is: a byte copy named by the SHA-256 of its bytes.

    A Parquet file is already a typed, columnar snapshot; reading it into pandas, hashing every
    value and writing it back costs seconds at a million rows and gives the same rows. Only its
    footer is read, to refuse a file that is not Parquet, has no rows or repeats a column.
    """
    if not path.is_file():
        raise IngestError(f"parquet source not found: {path}")
    try:
        metadata = pq.read_metadata(path)
        schema = metadata.schema.to_arrow_schema()
    except (pa.ArrowException, OSError) as exc:
        raise IngestError(f"cannot read parquet source {path}: {exc}") from exc
    stored_index = (schema.pandas_metadata or {}).get("index_columns", [])
    columns = [name for name in schema.names if name not in stored_index]
    if metadata.num_rows == 0:
        raise IngestError(f"source {describe} has no rows")
    if len(set(columns)) < len(columns):
        dupes = sorted({c for c in columns if columns.count(c) > 1})
        raise IngestError(f"source {describe} has duplicated columns {dupes}")
    fingerprint = _copy_hashed(path, snapshot_dir)
    return Snapshot(
        uri=str(snapshot_dir / f"{fingerprint}.parquet"),
        fingerprint=fingerprint,
        rows=metadata.num_rows,
        columns=columns,
        source=describe,
    )


def _copy_hashed(path: Path, snapshot_dir: Path) -> str:
    """Copy `path` into `snapshot_dir` as `<sha256>.parquet` (atomically); the fingerprint."""
    snapshot_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=snapshot_dir, suffix=".tmp")
    try:
        with path.open("rb") as source, os.fdopen(fd, "wb") as copy:
            while chunk := source.read(COPY_CHUNK_BYTES):
                digest.update(chunk)
                copy.write(chunk)
        fingerprint = digest.hexdigest()[:20]
        os.replace(tmp, snapshot_dir / f"{fingerprint}.parquet")
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return fingerprint


def recent_rows(frame: pd.DataFrame, window: WindowConfig) -> pd.DataFrame:
    """The rows inside a training window: the last `days` before the newest row, or last `rows`."""
    if window.time_column not in frame.columns:
        raise IngestError(f"training_window.time_column {window.time_column!r} is not in the data")
    clock = pd.to_datetime(frame[window.time_column], errors="coerce")
    if clock.isna().all():
        raise IngestError(f"training_window.time_column {window.time_column!r} has no timestamps")
    order = clock.argsort(kind="stable")
    if window.rows is not None:
        return frame.iloc[order[-window.rows :]].reset_index(drop=True)
    start = clock.max() - pd.Timedelta(days=window.days)
    return frame.loc[clock > start].reset_index(drop=True)


@task(**IO_RETRIES, **RELEASES_MEMORY)
def snapshot_source(
    source: SourceConfig, snapshot_dir: Path, window: WindowConfig | None = None
) -> Snapshot:
    """Read the source (only its recent window, if given) and write a fingerprinted snapshot."""
    if source.kind == "parquet" and window is None:
        return freeze_parquet_file(Path(str(source.path)), snapshot_dir, source.describe())
    frame = read_source(source)
    if window is not None:
        frame = recent_rows(frame, window)
    fingerprint = fingerprint_frame(frame)
    path = snapshot_dir / f"{fingerprint}.parquet"
    if not path.exists():  # content-addressed: an existing file already holds these rows
        write_parquet_atomic(frame, path)
    return Snapshot(
        uri=str(path),
        fingerprint=fingerprint,
        rows=len(frame),
        columns=[str(c) for c in frame.columns],
        source=source.describe(),
    )
