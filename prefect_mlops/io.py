"""Files the package writes and reads: atomic Parquet writes and partial Parquet reads."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def write_parquet_atomic(frame: pd.DataFrame, path: Path) -> None:
    """Write a Parquet file so that readers never see a partial one."""
    _write_atomic(path, lambda tmp: frame.to_parquet(tmp, index=False))


def write_table_atomic(table: pa.Table, path: Path) -> None:
    """Write an Arrow table as a Parquet file so that readers never see a partial one."""
    _write_atomic(path, lambda tmp: pq.write_table(table, tmp))


def _write_atomic(path: Path, write: Callable[[str], object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def read_parquet(uri: str, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a snapshot or split written by this package (only `columns`, when given)."""
    return pd.read_parquet(uri, columns=columns)


def read_parquet_head(uri: str, rows: int, columns: list[str] | None = None) -> pd.DataFrame:
    """The first `rows` rows of a Parquet file, without reading the rest of it."""
    batches = pq.ParquetFile(uri).iter_batches(batch_size=rows, columns=columns)
    return next(batches).to_pandas()
