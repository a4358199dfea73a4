from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prefect_mlops.config import SplitConfig
from prefect_mlops.errors import DataQualityError
from prefect_mlops.io import write_parquet_atomic
from prefect_mlops.results import Snapshot
from prefect_mlops.split import split_frame
from tasks.split import split_snapshot


@pytest.fixture
def frame() -> pd.DataFrame:
    n = 100
    shuffled = np.random.default_rng(1).permutation(n)
    return pd.DataFrame(
        {
            "t": pd.date_range("2024-01-01", periods=n, freq="D")[shuffled].astype(str),
            "y": np.where(np.arange(n) % 4 == 0, "rare", "common"),
        }
    )


def test_time_split_holds_out_the_latest_rows(frame: pd.DataFrame) -> None:
    train, holdout = split_frame(frame, SplitConfig(strategy="time", time_column="t"), "y", 0)
    assert len(holdout) == 20
    assert pd.to_datetime(train["t"]).max() < pd.to_datetime(holdout["t"]).min()


def test_stratified_split_keeps_class_shares(frame: pd.DataFrame) -> None:
    _, holdout = split_frame(frame, SplitConfig(strategy="stratified"), "y", 0)
    assert (holdout["y"] == "rare").mean() == pytest.approx(0.25)


def test_random_split_is_reproducible_with_the_seed(frame: pd.DataFrame) -> None:
    a, _ = split_frame(frame, SplitConfig(), "y", 3)
    b, _ = split_frame(frame, SplitConfig(), "y", 3)
    c, _ = split_frame(frame, SplitConfig(), "y", 4)
    assert a.equals(b)
    assert not a.equals(c)


def test_unparseable_time_column_is_named(frame: pd.DataFrame) -> None:
    broken = frame.assign(t="not a date")
    with pytest.raises(DataQualityError, match="time column 't' has 100 unparseable"):
        split_frame(broken, SplitConfig(strategy="time", time_column="t"), "y", 0)


@pytest.mark.parametrize(
    "split",
    [
        SplitConfig(strategy="time", time_column="t"),
        SplitConfig(strategy="stratified"),
        SplitConfig(),
    ],
    ids=["time", "stratified", "random"],
)
def test_snapshot_split_files_hold_the_same_rows_as_split_frame(
    frame: pd.DataFrame, split: SplitConfig, tmp_path: Path
) -> None:
    data = frame.assign(x=np.arange(len(frame), dtype=float))
    data.loc[5, "x"] = np.nan
    uri = tmp_path / "snapshot.parquet"
    write_parquet_atomic(data, uri)
    snapshot = Snapshot(uri=str(uri), fingerprint="f", rows=len(data), columns=[], source="test")
    refs = split_snapshot.fn(snapshot, split, "y", 7, tmp_path / "splits")
    train, holdout = split_frame(data, split, "y", 7)
    pd.testing.assert_frame_equal(pd.read_parquet(refs.train_uri), train)
    pd.testing.assert_frame_equal(pd.read_parquet(refs.holdout_uri), holdout)
    assert (refs.train_rows, refs.holdout_rows) == (len(train), len(holdout))


def test_missing_split_column_is_named_before_reading_rows(
    frame: pd.DataFrame, tmp_path: Path
) -> None:
    uri = tmp_path / "snapshot.parquet"
    write_parquet_atomic(frame, uri)
    snapshot = Snapshot(uri=str(uri), fingerprint="f", rows=len(frame), columns=[], source="test")
    with pytest.raises(DataQualityError, match=r"split\.time_column 'when' is not in the data"):
        split_snapshot.fn(
            snapshot, SplitConfig(strategy="time", time_column="when"), "y", 0, tmp_path
        )
