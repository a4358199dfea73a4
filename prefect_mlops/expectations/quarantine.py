"""Quarantine: a failed batch kept beside its summary, for a person to inspect."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from prefect_mlops.io import write_parquet_atomic
from prefect_mlops.results import ValidationSummary


def quarantine_batch(
    frame: pd.DataFrame, summary: ValidationSummary, folder: Path
) -> ValidationSummary:
    """Keep a failed batch and its summary in `folder`; the returned summary points there."""
    write_parquet_atomic(_parquet_safe(frame), folder / "batch.parquet")
    return _keep_summary(summary, folder)


def quarantine_file(path: Path, summary: ValidationSummary, folder: Path) -> ValidationSummary:
    """Keep a failed snapshot file (a byte copy, never read into memory) and its summary."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, folder / "batch.parquet")
    return _keep_summary(summary, folder)


def _keep_summary(summary: ValidationSummary, folder: Path) -> ValidationSummary:
    summary = summary.model_copy(update={"quarantine_uri": str(folder.resolve())})
    (folder / "summary.json").write_text(summary.model_dump_json(indent=2))
    return summary


def _parquet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Parquet needs one type per column: text columns that mix types are stored as text."""
    mixed = [
        column
        for column in frame.columns
        if frame[column].dtype == object and frame[column].dropna().map(type).nunique() > 1
    ]
    if not mixed:
        return frame
    safe = frame.copy()
    for column in mixed:
        safe[column] = frame[column].astype(str).where(frame[column].notna(), None)
    return safe
