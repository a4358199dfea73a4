"""Split: cut a snapshot into train and holdout parts, reproducibly, and write both beside it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
from prefect import task
from sklearn.model_selection import train_test_split

from prefect_mlops.config import SplitConfig
from prefect_mlops.errors import DataQualityError
from prefect_mlops.results import Snapshot, SplitRefs
from tasks.io import read_parquet, release_memory, write_parquet_atomic


def split_frame(
    frame: pd.DataFrame, split: SplitConfig, target: str, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Random, stratified or time-ordered split; a time split holds out the latest rows."""
    if split.strategy == "time":
        column = str(split.time_column)
        if column not in frame.columns:
            raise DataQualityError(f"split.time_column {column!r} is not in the data")
        clock = pd.to_datetime(frame[column], errors="coerce")
        if clock.isna().any():
            raise DataQualityError(
                f"time column {column!r} has {int(clock.isna().sum())} unparseable or null values"
            )
        ordered = frame.iloc[clock.argsort(kind="stable")].reset_index(drop=True)
        cut = len(ordered) - max(1, round(len(ordered) * split.test_size))
        return ordered.iloc[:cut], ordered.iloc[cut:]
    stratify = frame[target] if split.strategy == "stratified" else None
    try:
        train, holdout = train_test_split(
            frame, test_size=split.test_size, random_state=seed, stratify=stratify
        )
    except ValueError as exc:
        raise DataQualityError(f"cannot {split.strategy}-split the data: {exc}") from exc
    return train.reset_index(drop=True), holdout.reset_index(drop=True)


@task(on_completion=[release_memory], on_failure=[release_memory])
def split_snapshot(
    snapshot: Snapshot, split: SplitConfig, target: str, seed: int, split_dir: Path
) -> SplitRefs:
    """Split a snapshot and write train and holdout Parquet files keyed by data and split."""
    key = hashlib.sha256(f"{snapshot.fingerprint}{split.model_dump_json()}{seed}".encode())
    folder = split_dir / key.hexdigest()[:16]
    train, holdout = split_frame(read_parquet(snapshot.uri), split, target, seed)
    if train.empty or holdout.empty:
        raise DataQualityError(
            f"split leaves {len(train)} training and {len(holdout)} holdout rows; need both"
        )
    write_parquet_atomic(train, folder / "train.parquet")
    write_parquet_atomic(holdout, folder / "holdout.parquet")
    return SplitRefs(
        train_uri=str(folder / "train.parquet"),
        holdout_uri=str(folder / "holdout.parquet"),
        train_rows=len(train),
        holdout_rows=len(holdout),
    )
