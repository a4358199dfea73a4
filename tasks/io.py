"""Shared I/O helpers for tasks: Parquet round trips and the retry policy for transient errors."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from prefect_mlops.errors import MlopsError

IO_RETRY_DELAYS = [1, 5]


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry I/O failures, but never our own errors: a missing file will not appear by retrying."""
    error = state.data if isinstance(state.data, BaseException) else None
    if error is None:
        error = state.result(raise_on_failure=False)
    return not isinstance(error, MlopsError | ValueError | KeyError | TypeError)


def write_parquet_atomic(frame: pd.DataFrame, path: Path) -> None:
    """Write a Parquet file so that readers never see a partial one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def read_parquet(uri: str, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a snapshot or split written by this package."""
    return pd.read_parquet(uri, columns=columns)
