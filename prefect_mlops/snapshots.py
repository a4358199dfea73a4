"""Snapshots: a source frozen as an immutable Parquet file named by its content fingerprint."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from prefect_mlops.config import WindowConfig
from prefect_mlops.errors import IngestError
from prefect_mlops.io import write_parquet_atomic
from prefect_mlops.results import Snapshot
from prefect_mlops.settings import Settings
from prefect_mlops.sources import CsvSource, ParquetSource, Source, SqlSource, recent_rows
from prefect_mlops.streaming import stream_csv

COPY_CHUNK_BYTES = 1 << 20
Progress = Callable[[str], None]


def fingerprint_frame(frame: pd.DataFrame) -> str:
    """A content hash of columns, dtypes and every value; the same rows give the same hash.

    Snapshots of SQL sources and of training windows are named by it; a whole CSV source by the
    streamed hash of its Arrow columns (`streaming.fingerprint_batches`), a whole Parquet source
    by the hash of its bytes (`freeze_parquet_file`).
    """
    digest = hashlib.sha256()
    digest.update(repr([(str(c), str(t)) for c, t in frame.dtypes.items()]).encode())
    digest.update(pd.util.hash_pandas_object(_hashable(frame), index=False).to_numpy().tobytes())
    return digest.hexdigest()[:20]


def _hashable(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with list-valued cells (a window's logged class probabilities) as their text,
    which pandas can hash; other columns as they are."""
    listed = [
        column
        for column in frame.columns
        if frame[column].dtype == object
        and frame[column].map(lambda v: isinstance(v, list | tuple | np.ndarray)).any()
    ]
    if not listed:
        return frame

    def text(value: object) -> object:
        return (
            repr(np.asarray(value).tolist())
            if isinstance(value, list | tuple | np.ndarray)
            else value
        )

    return frame.assign(**{str(column): frame[column].map(text) for column in listed})


def freeze_parquet_file(source: ParquetSource, snapshot_dir: Path) -> Snapshot:
    """Snapshot a Parquet file as it is: a byte copy named by the SHA-256 of its bytes.

    A Parquet file is already a typed, columnar snapshot; reading it into pandas, hashing every
    value and writing it back costs seconds at a million rows and gives the same rows. Only its
    footer is read, to refuse a file that is not Parquet, has no rows or repeats a column.
    """
    shape = source.read_shape()
    fingerprint = _copy_hashed(Path(source.path), snapshot_dir)
    return Snapshot(
        uri=str(snapshot_dir / f"{fingerprint}.parquet"),
        fingerprint=fingerprint,
        rows=shape.rows,
        columns=shape.columns,
        source=source.describe(),
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


def take_snapshot(
    source: Source,
    snapshot_dir: Path,
    window: WindowConfig | None = None,
    settings: Settings | None = None,
    progress: Progress | None = None,
) -> Snapshot:
    """Freeze the source (only its recent window, if given) as a fingerprinted snapshot.

    A whole CSV or Parquet file is streamed in bounded memory; a window or a SQL source is read
    whole, and refused up front above `settings.max_whole_read_bytes` / `max_whole_read_rows`.
    """
    if window is None and isinstance(source, ParquetSource):
        return freeze_parquet_file(source, snapshot_dir)
    if window is None and isinstance(source, CsvSource):
        return stream_csv(source, snapshot_dir, progress or _silent)
    frame = read_whole(source, settings or Settings())
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


def read_whole(source: Source, settings: Settings) -> pd.DataFrame:
    """Every row in memory, refused before reading when the source is above the settings' limit."""
    if isinstance(source, SqlSource):
        rows, limit = source.count_rows(), settings.max_whole_read_rows
        if rows > limit:
            raise IngestError(
                f"sql source {source.describe()} has {rows} rows, above max_whole_read_rows "
                f"({limit}) that may be read into memory at once; set MLOPS_MAX_WHOLE_READ_ROWS "
                "higher if the machine has about 650 bytes per row to spare"
            )
        return source.read()
    path = Path(source.path)
    size, limit = (path.stat().st_size if path.is_file() else 0), settings.max_whole_read_bytes
    if size > limit:
        raise IngestError(
            f"{source.kind} source {path} is {size / 2**20:.0f} MiB and a training window reads "
            f"it whole, above max_whole_read_bytes ({limit / 2**20:.0f} MiB); set "
            "MLOPS_MAX_WHOLE_READ_BYTES higher if the machine has about 8x the file's size in "
            "memory, or train on every row (window 'all'), which streams"
        )
    return source.read()


def _silent(message: str) -> None:
    """No progress report."""
