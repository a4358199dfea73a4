"""The champion comparison uses only holdout rows neither model was trained on, both directions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prefect_mlops.comparison import lineage_from_tags, split_tags, unseen_rows
from prefect_mlops.config import PipelineConfig, parse_config
from prefect_mlops.io import write_parquet_atomic
from prefect_mlops.results import Snapshot, SplitLineage, SplitRefs
from prefect_mlops.settings import Settings
from prefect_mlops.split import write_split
from tests.conftest import fast_config_dict

HOURS = 600
RECENT = 200  # the training window: the last 200 hours


@pytest.fixture(scope="module")
def hours() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    x = rng.normal(size=HOURS)
    return pd.DataFrame(
        {
            "timestamp": pd.date_range("2024-01-01", periods=HOURS, freq="h").astype(str),
            "x": x,
            "bikers": 3 * x + rng.normal(size=HOURS),
        }
    )


def config(split: dict) -> PipelineConfig:
    raw = fast_config_dict(exclude=[], slices=[], categorical_features=[])
    raw["training_window"] = {"time_column": "timestamp", "rows": RECENT}
    return parse_config({**raw, "split": split})


def cut(frame: pd.DataFrame, cfg: PipelineConfig, folder: Path, label: str) -> SplitRefs:
    uri = folder / f"{label}.parquet"
    write_parquet_atomic(frame.reset_index(drop=True), uri)
    snapshot = Snapshot(uri=str(uri), fingerprint=label, rows=len(frame), columns=[], source="t")
    return write_split(snapshot, cfg, Settings(artifact_root=folder).artifact_store())


def compared(challenger: SplitRefs, champion: SplitRefs, min_rows: int = 10) -> pd.DataFrame:
    """The challenger's holdout rows the comparison uses against `champion`."""
    holdout = pd.read_parquet(challenger.holdout_uri)
    unseen = unseen_rows(holdout, champion.lineage, "1", min_rows)
    assert unseen.reason is None, unseen.reason
    assert unseen.mask is not None
    return holdout[unseen.mask]


def assert_never_its_training_rows(rows: pd.DataFrame, champion: SplitRefs) -> None:
    trained = set(pd.read_parquet(champion.train_uri)["timestamp"])
    assert len(rows) > 0
    assert not set(rows["timestamp"]) & trained


TIME = {"strategy": "time", "time_column": "timestamp", "test_size": 0.2}
RANDOM = {"strategy": "random", "test_size": 0.2}


@pytest.mark.parametrize("split", [TIME, RANDOM], ids=["time", "hash"])
def test_recent_window_challenger_against_full_data_champion(
    hours: pd.DataFrame, tmp_path: Path, split: dict
) -> None:
    cfg = config(split)
    champion = cut(hours, cfg, tmp_path, "all")
    challenger = cut(hours.tail(RECENT), cfg, tmp_path, "recent")
    rows = compared(challenger, champion)
    assert_never_its_training_rows(rows, champion)
    # Here every recent holdout row is unseen by the full-data champion: none is lost.
    assert len(rows) == challenger.holdout_rows


@pytest.mark.parametrize("split", [TIME, RANDOM], ids=["time", "hash"])
def test_full_data_challenger_against_recent_window_champion(
    hours: pd.DataFrame, tmp_path: Path, split: dict
) -> None:
    cfg = config(split)
    champion = cut(hours.tail(RECENT), cfg, tmp_path, "recent")
    challenger = cut(hours, cfg, tmp_path, "all")
    rows = compared(challenger, champion)
    assert_never_its_training_rows(rows, champion)
    holdout = pd.read_parquet(challenger.holdout_uri)
    trained = set(pd.read_parquet(champion.train_uri)["timestamp"])
    if split is TIME:  # the recent champion trained on part of this holdout: left out
        assert holdout["timestamp"].isin(trained).sum() > 0
        assert len(rows) == (~holdout["timestamp"].isin(trained)).sum()
        end = pd.Timestamp(str(champion.lineage.train_end))
        assert pd.to_datetime(rows["timestamp"]).min() > end
    else:  # a row's hash side is the same in both: every holdout row is unseen
        assert len(rows) == len(holdout)


def test_a_hash_champion_with_a_smaller_holdout_is_compared_on_its_share(
    hours: pd.DataFrame, tmp_path: Path
) -> None:
    champion = cut(hours, config({**RANDOM, "test_size": 0.1}), tmp_path, "small")
    challenger = cut(hours, config(RANDOM), tmp_path, "large")
    rows = compared(challenger, champion)
    assert_never_its_training_rows(rows, champion)
    assert len(rows) < challenger.holdout_rows


def test_a_time_champion_is_compared_with_a_hash_challenger_after_its_training_end(
    hours: pd.DataFrame, tmp_path: Path
) -> None:
    champion = cut(hours.head(400), config(TIME), tmp_path, "early")
    challenger = cut(hours, config(RANDOM), tmp_path, "later")
    rows = compared(challenger, champion)
    assert_never_its_training_rows(rows, champion)
    assert pd.to_datetime(rows["timestamp"]).min() > pd.Timestamp(champion.lineage.train_end)


def test_no_rows_after_the_champions_training_end_is_not_comparable(
    hours: pd.DataFrame, tmp_path: Path
) -> None:
    champion = cut(hours, config(TIME), tmp_path, "all")
    challenger = cut(hours.head(300), config(TIME), tmp_path, "old")
    holdout = pd.read_parquet(challenger.holdout_uri)
    unseen = unseen_rows(holdout, champion.lineage, "4", 10)
    assert unseen.mask is None
    assert unseen.reason is not None
    assert "only 0 of the challenger's 60 holdout rows" in unseen.reason
    assert "later than champion v4's training end" in unseen.reason


def test_a_champion_without_lineage_or_with_another_key_is_not_comparable(
    hours: pd.DataFrame, tmp_path: Path
) -> None:
    challenger = cut(hours, config(RANDOM), tmp_path, "all")
    holdout = pd.read_parquet(challenger.holdout_uri)
    missing = unseen_rows(holdout, None, "2", 10)
    assert missing.reason is not None and "v2 has no split lineage" in missing.reason
    other_key = challenger.lineage.model_copy(update={"row_key": ["gone"], "train_end": None})
    unmatched = unseen_rows(holdout, other_key, "2", 10)
    assert unmatched.reason is not None and "cannot be matched" in unmatched.reason


def test_split_lineage_round_trips_through_tags() -> None:
    lineage = SplitLineage(
        strategy="stratified",
        test_size=0.25,
        assignment="hash",
        row_key=["a", "b"],
        hash_scheme="pandas-siphash-v1",
        time_column="t",
        train_end="2024-01-02T00:00:00",
    )
    assert lineage_from_tags(split_tags(lineage)) == lineage
    assert lineage_from_tags({"data_fingerprint": "x"}) is None


def test_a_window_column_with_gaps_records_the_latest_known_training_time(
    hours: pd.DataFrame, tmp_path: Path
) -> None:
    gappy = hours.assign(timestamp=hours["timestamp"].where(hours.index % 7 != 0))
    refs = cut(gappy, config(RANDOM), tmp_path, "gappy")
    trained = pd.to_datetime(pd.read_parquet(refs.train_uri)["timestamp"])
    assert trained.isna().any()
    assert refs.lineage.train_end == trained.max().isoformat()
    holdout = pd.read_parquet(refs.holdout_uri)
    unseen = unseen_rows(holdout, refs.lineage, "1", 1)
    assert unseen.mask is not None and unseen.mask.all()  # its own hash holdout, gaps or not
