"""Snapshots: a source frozen as an immutable Parquet file named by its content fingerprint."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import pandas as pd

from prefect_mlops.config import WindowConfig
from prefect_mlops.io import write_parquet_atomic
from prefect_mlops.results import Snapshot
from prefect_mlops.sources import ParquetSource, Source, recent_rows

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
    source: Source, snapshot_dir: Path, window: WindowConfig | None = None
) -> Snapshot:
    """Read the source (only its recent window, if given) and write a fingerprinted snapshot."""
    if isinstance(source, ParquetSource) and window is None:
        return freeze_parquet_file(source, snapshot_dir)
    frame = source.read() if window is None else recent_rows(source.read(), window)
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
