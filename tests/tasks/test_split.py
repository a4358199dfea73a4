from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prefect_mlops.config import PipelineConfig, SplitConfig, parse_config
from prefect_mlops.errors import DataQualityError
from prefect_mlops.io import write_parquet_atomic
from prefect_mlops.results import Snapshot
from prefect_mlops.settings import Settings
from prefect_mlops.split import split_frame
from tasks.split import split_snapshot


def config_with(split: SplitConfig) -> PipelineConfig:
    from tests.conftest import fast_config_dict

    raw = fast_config_dict(
        task="classification",
        target="y",
        exclude=[],
        slices=[],
        training_window=None,
        gate={"primary_metric": "f1"},
    )
    return parse_config({**raw, "split": split.model_dump(exclude_none=True)})


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
    train, holdout = split_frame(frame, SplitConfig(strategy="time", time_column="t"), "y")
    assert len(holdout) == 20
    assert pd.to_datetime(train["t"]).max() < pd.to_datetime(holdout["t"]).min()


def test_stratified_hash_split_keeps_class_shares_about(frame: pd.DataFrame) -> None:
    big = pd.concat([frame.assign(i=k) for k in range(20)], ignore_index=True)
    train, holdout = split_frame(big, SplitConfig(strategy="stratified"), "y")
    assert len(holdout) / len(big) == pytest.approx(0.2, abs=0.03)
    assert (holdout["y"] == "rare").mean() == pytest.approx(0.25, abs=0.03)
    assert (train["y"] == "rare").mean() == pytest.approx(0.25, abs=0.03)


def test_stratified_split_that_leaves_a_class_untrained_is_refused(frame: pd.DataFrame) -> None:
    from prefect_mlops.split import row_buckets

    held = frame[row_buckets(frame[["t"]]) < 2000].iloc[:1].assign(y="lonely")
    split = SplitConfig(strategy="stratified", row_key=["t"])
    with pytest.raises(DataQualityError, match=r"class\(es\) \['lonely'\] \(lonely: 1 rows\)"):
        split_frame(pd.concat([frame, held]), split, "y", ["t"])


def test_a_row_keeps_its_side_across_windows_and_added_rows(frame: pd.DataFrame) -> None:
    split = SplitConfig(row_key=["t"])
    _, holdout = split_frame(frame, split, "y")
    _, window = split_frame(frame.iloc[40:], split, "y")
    grown = pd.concat([frame, frame.assign(t=frame["t"] + "x")], ignore_index=True)
    _, grown_holdout = split_frame(grown.sample(frac=1, random_state=2), split, "y")
    assert set(window["t"]) == set(holdout["t"]) & set(frame["t"].iloc[40:])
    assert set(holdout["t"]) <= set(grown_holdout["t"])
    assert not set(holdout["t"]) & set(grown.loc[~grown["t"].isin(grown_holdout["t"]), "t"])


def test_row_hash_ignores_the_dtype_a_snapshot_gave_a_column() -> None:
    from prefect_mlops.split import row_buckets

    ints = pd.DataFrame({"s": ["a", "b", None], "n": [1, 2, 3]})
    other = pd.DataFrame(
        {"s": pd.Categorical(["a", "b", None]), "n": pd.Series([1, 2, 3], dtype="Int64")}
    )
    floats = pd.DataFrame({"s": pd.Series(["a", "b", None], dtype="string"), "n": [1.0, 2, 3]})
    assert (row_buckets(ints) == row_buckets(other)).all()
    assert (row_buckets(ints) == row_buckets(floats)).all()
    assert len(set(row_buckets(ints))) == 3


def test_unparseable_time_column_is_named(frame: pd.DataFrame) -> None:
    broken = frame.assign(t="not a date")
    with pytest.raises(DataQualityError, match="time column 't' has 100 unparseable"):
        split_frame(broken, SplitConfig(strategy="time", time_column="t"), "y")


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
    refs = split_snapshot.fn(snapshot, config_with(split), Settings(artifact_root=tmp_path))
    train, holdout = split_frame(data, split, "y")
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
            snapshot,
            config_with(SplitConfig(strategy="time", time_column="when")),
            Settings(artifact_root=tmp_path),
        )


def test_each_split_records_how_it_was_cut(frame: pd.DataFrame, tmp_path: Path) -> None:
    uri = tmp_path / "snapshot.parquet"
    write_parquet_atomic(frame, uri)
    snapshot = Snapshot(uri=str(uri), fingerprint="f", rows=len(frame), columns=[], source="test")
    settings = Settings(artifact_root=tmp_path)
    by_time = split_snapshot.fn(
        snapshot, config_with(SplitConfig(strategy="time", time_column="t")), settings
    )
    hashed = split_snapshot.fn(snapshot, config_with(SplitConfig(test_size=0.3)), settings)
    assert by_time.lineage.assignment == "time"
    assert (
        by_time.lineage.train_end
        == pd.to_datetime(pd.read_parquet(by_time.train_uri)["t"]).max().isoformat()
    )
    assert (
        pd.Timestamp(by_time.lineage.train_end)
        < pd.to_datetime(pd.read_parquet(by_time.holdout_uri)["t"]).min()
    )
    assert hashed.lineage.assignment == "hash"
    assert (hashed.lineage.row_key, hashed.lineage.test_size) == (["t", "y"], 0.3)
    assert hashed.lineage.train_end is None  # no time column known to the config
