"""Split: cut a snapshot into train and holdout parts, reproducibly, and write both beside it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from sklearn.model_selection import train_test_split

from prefect_mlops.config import SplitConfig
from prefect_mlops.errors import DataQualityError
from prefect_mlops.io import write_table_atomic
from prefect_mlops.results import Snapshot, SplitRefs


def split_rows(
    frame: pd.DataFrame, split: SplitConfig, target: str, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of the train and holdout parts: random, stratified or time-ordered (the
    latest rows held out). `frame` needs only the time column or the target."""
    rows = np.arange(len(frame))
    if split.strategy == "time":
        column = str(split.time_column)
        if column not in frame.columns:
            raise DataQualityError(f"split.time_column {column!r} is not in the data")
        clock = pd.to_datetime(frame[column], errors="coerce")
        if clock.isna().any():
            raise DataQualityError(
                f"time column {column!r} has {int(clock.isna().sum())} unparseable or null values"
            )
        order = clock.argsort(kind="stable").to_numpy()
        cut = len(order) - max(1, round(len(order) * split.test_size))
        return order[:cut], order[cut:]
    stratify = frame[target] if split.strategy == "stratified" else None
    try:
        train, holdout = train_test_split(
            rows, test_size=split.test_size, random_state=seed, stratify=stratify
        )
    except ValueError as exc:
        raise DataQualityError(f"cannot {split.strategy}-split the data: {exc}") from exc
    return train, holdout


def split_frame(
    frame: pd.DataFrame, split: SplitConfig, target: str, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The train and holdout parts of a frame (see `split_rows`)."""
    train, holdout = split_rows(frame, split, target, seed)
    return frame.iloc[train].reset_index(drop=True), frame.iloc[holdout].reset_index(drop=True)


def write_split(
    snapshot: Snapshot, split: SplitConfig, target: str, seed: int, split_dir: Path
) -> SplitRefs:
    """Split a snapshot and write train and holdout Parquet files keyed by data and split."""
    key = hashlib.sha256(f"{snapshot.fingerprint}{split.model_dump_json()}{seed}".encode())
    folder = split_dir / key.hexdigest()[:16]
    # Rows are cut in Arrow: only the column that decides the split is converted to pandas.
    table = pq.read_table(snapshot.uri)
    decider = str(split.time_column) if split.strategy == "time" else target
    if decider not in table.column_names:
        what = "split.time_column" if split.strategy == "time" else "target column"
        raise DataQualityError(f"{what} {decider!r} is not in the data")
    train, holdout = split_rows(table.select([decider]).to_pandas(), split, target, seed)
    if len(train) == 0 or len(holdout) == 0:
        raise DataQualityError(
            f"split leaves {len(train)} training and {len(holdout)} holdout rows; need both"
        )
    write_table_atomic(table.take(train), folder / "train.parquet")
    write_table_atomic(table.take(holdout), folder / "holdout.parquet")
    return SplitRefs(
        train_uri=str(folder / "train.parquet"),
        holdout_uri=str(folder / "holdout.parquet"),
        train_rows=len(train),
        holdout_rows=len(holdout),
    )
