"""Split: cut a snapshot into train and holdout parts, reproducibly, and store both beside it.

A time split holds out the latest rows. Random and stratified splits send a row to the holdout
when a hash of its key falls in the lowest `test_size` share of buckets, so a row keeps its side
across runs, training windows and growing data: a later run can tell which of its holdout rows
an earlier version never trained on (prefect_mlops.comparison).
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from prefect_mlops.artifact_store import SPLITS, ArtifactStore
from prefect_mlops.config import PipelineConfig, SplitConfig
from prefect_mlops.errors import DataQualityError
from prefect_mlops.io import write_table_atomic
from prefect_mlops.results import Snapshot, SplitLineage, SplitRefs

# Recorded with every version: a change to how rows are hashed must change this name, so an
# older version's hash holdout is not mistaken for the new one.
ROW_HASH = "pandas-siphash-v1"
BUCKETS = 10_000
PARTS = ("train", "holdout")


def holdout_buckets(test_size: float) -> int:
    """How many of the BUCKETS hash buckets are held out."""
    return round(test_size * BUCKETS)


def row_key_columns(columns: list[str], config: PipelineConfig) -> list[str]:
    """The columns a row's hash is taken over: `split.row_key`, else features and target
    (every column but the exclusions when the features are inferred)."""
    if config.split.row_key:
        return list(config.split.row_key)
    if config.features:
        return list(dict.fromkeys([*config.features, config.target]))
    excluded = set(config.exclude)
    return sorted(c for c in columns if c not in excluded)


def _canonical(values: pd.Series) -> pd.Series:
    """One representation per value whatever dtype a snapshot gave the column: numbers (and
    booleans) as float64, times as UTC nanoseconds, anything else as text; missing as one token."""
    if pd.api.types.is_bool_dtype(values.dtype) or pd.api.types.is_numeric_dtype(values.dtype):
        numbers = values.astype("float64").to_numpy(copy=True)
        numbers[numbers == 0] = 0.0  # -0.0 and 0.0 are one value
        numbers[np.isnan(numbers)] = np.nan  # one NaN bit pattern
        return pd.Series(numbers)
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_convert(None)
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return pd.Series(values.astype("datetime64[ns]").to_numpy().view("int64"))
    # As categories: each distinct value is turned to text and hashed once (pandas hashes a
    # categorical by its categories' values, missing as one token).
    categories = pd.Categorical(values)
    labels = categories.categories.astype(str)
    if labels.has_duplicates:  # distinct values with one text form ('1' and 1): hash the text
        return pd.Series(pd.Categorical(values.astype(str).where(values.notna())))
    return pd.Series(categories.rename_categories(labels))


def row_buckets(frame: pd.DataFrame) -> np.ndarray:
    """Each row's hash bucket in [0, BUCKETS), from the values of the frame's columns in order."""
    if frame.empty:
        return np.zeros(len(frame), dtype=np.int64)
    canonical = pd.DataFrame({i: _canonical(frame[c]) for i, c in enumerate(frame.columns)})
    hashes = pd.util.hash_pandas_object(canonical, index=False).to_numpy()
    return (hashes % BUCKETS).astype(np.int64)


def clock(values: pd.Series, column: str, strict: bool = True) -> pd.Series:
    """A time column as timezone-naive (UTC) timestamps; unparseable or null values refused
    (or, not `strict`, left NaT: later than no training end, so never taken as unseen)."""
    times = pd.to_datetime(values, errors="coerce")
    if isinstance(times.dtype, pd.DatetimeTZDtype):
        times = times.dt.tz_convert(None)
    if strict and times.isna().any():
        raise DataQualityError(
            f"time column {column!r} has {int(times.isna().sum())} unparseable or null values"
        )
    return times


def split_rows(
    frame: pd.DataFrame, split: SplitConfig, target: str, key: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of the train and holdout parts. `frame` needs only the time column (time)
    or the key columns and the target (random, stratified)."""
    if split.strategy == "time":
        column = str(split.time_column)
        if column not in frame.columns:
            raise DataQualityError(f"split.time_column {column!r} is not in the data")
        order = clock(frame[column], column).argsort(kind="stable").to_numpy()
        cut = len(order) - max(1, round(len(order) * split.test_size))
        return order[:cut], order[cut:]
    missing = [c for c in key if c not in frame.columns]
    if missing:
        raise DataQualityError(f"split.row_key columns {missing} are not in the data")
    held_out = row_buckets(frame[key]) < holdout_buckets(split.test_size)
    if split.strategy == "stratified":
        _check_every_class_trains(frame[target], held_out)
    rows = np.arange(len(frame))
    return rows[~held_out], rows[held_out]


def _check_every_class_trains(labels: pd.Series, held_out: np.ndarray) -> None:
    """A hash split keeps class shares only on average: refuse one that leaves a class untrained."""
    counts = labels.value_counts()
    trained = labels[~held_out].value_counts()
    lost = [str(c) for c in counts.index if trained.get(c, 0) == 0]
    if lost:
        raise DataQualityError(
            f"stratified split holds out every row of class(es) {lost} "
            f"({', '.join(f'{c}: {counts[c]} rows' for c in counts.index if str(c) in lost)}); "
            "add rows of them, or set split.row_key so their rows hash apart"
        )


def split_frame(
    frame: pd.DataFrame, split: SplitConfig, target: str, key: list[str] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The train and holdout parts of a frame (see `split_rows`; key: every column, sorted)."""
    train, holdout = split_rows(frame, split, target, key or sorted(frame.columns))
    return frame.iloc[train].reset_index(drop=True), frame.iloc[holdout].reset_index(drop=True)


def split_lineage(
    split: SplitConfig, key: list[str], time_column: str | None, train_times: pd.Series | None
) -> SplitLineage:
    """How this holdout was cut, and the latest training time when a time column is known."""
    hashed = split.strategy != "time"
    return SplitLineage(
        strategy=split.strategy,
        test_size=split.test_size,
        assignment="hash" if hashed else "time",
        row_key=key if hashed else [],
        hash_scheme=ROW_HASH if hashed else None,
        time_column=time_column,
        train_end=None
        if train_times is None or train_times.empty
        else train_times.max().isoformat(),
    )


def _lineage_clock(config: PipelineConfig, table: pa.Table) -> str | None:
    """The time column whose latest training value is recorded: the split's, else the window's."""
    if config.split.strategy == "time":
        return config.split.time_column
    window = config.training_window
    return window.time_column if window and window.time_column in table.column_names else None


def write_split(snapshot: Snapshot, config: PipelineConfig, store: ArtifactStore) -> SplitRefs:
    """Split a snapshot and store train and holdout Parquet files keyed by data and split (the
    snapshot is read from its URI, through the store's cache when it is remote)."""
    split, target = config.split, config.target
    table = pq.read_table(store.localize(snapshot.uri))
    key = [] if split.strategy == "time" else row_key_columns(table.column_names, config)
    recipe = f"{snapshot.fingerprint}{split.model_dump_json()}{json.dumps(key)}{ROW_HASH}"
    folder = hashlib.sha256(recipe.encode()).hexdigest()[:16]
    # Rows are cut in Arrow: only the columns that decide the split are converted to pandas.
    deciders = [str(split.time_column)] if split.strategy == "time" else [*key, target]
    missing = [c for c in dict.fromkeys(deciders) if c not in table.column_names]
    if missing:
        what = "split.time_column" if split.strategy == "time" else "target or row key column"
        raise DataQualityError(f"{what} {missing[0]!r} is not in the data")
    frame = table.select(list(dict.fromkeys(deciders))).to_pandas()
    train, holdout = split_rows(frame, split, target, key)
    if len(train) == 0 or len(holdout) == 0:
        raise DataQualityError(
            f"split leaves {len(train)} training and {len(holdout)} holdout rows; need both"
        )
    column = _lineage_clock(config, table)
    train_times = None
    if column is not None:
        times = frame[column] if column in frame else table.column(column).to_pandas()
        # Only the split's own clock must be whole; a window's column records what it can.
        train_times = clock(times, column, strict=split.strategy == "time").iloc[train].dropna()
    train_uri, holdout_uri = (store.uri(SPLITS, folder, f"{part}.parquet") for part in PARTS)
    for uri, rows in ((train_uri, train), (holdout_uri, holdout)):
        write_table_atomic(table.take(rows), store.local_path(uri))  # on local disk first
        store.publish(uri)  # then whole, under its final name
    return SplitRefs(
        train_uri=train_uri,
        holdout_uri=holdout_uri,
        train_rows=len(train),
        holdout_rows=len(holdout),
        lineage=split_lineage(split, key, column, train_times),
    )
