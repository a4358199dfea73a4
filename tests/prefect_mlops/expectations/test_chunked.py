"""Chunked validation of a snapshot: per-chunk findings named, one summary, the fast path intact."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from prefect_mlops.config import PipelineConfig
from prefect_mlops.expectations.chunked import validate_snapshot_file
from prefect_mlops.expectations.run import validate_frame
from prefect_mlops.io import write_parquet_atomic
from prefect_mlops.settings import Settings
from tests.prefect_mlops.expectations.helpers import copy_gx, corrupt, failed_on


def snapshot_file(frame: pd.DataFrame, tmp_path: Path) -> str:
    path = tmp_path / "snapshot.parquet"
    write_parquet_atomic(frame, path)
    return str(path)


def chunked(settings: Settings, rows: int) -> Settings:
    return settings.model_copy(update={"validation_chunk_rows": rows})


def test_a_failure_only_in_the_third_chunk_is_found_and_named(
    bikeshare: pd.DataFrame, config: PipelineConfig, gx_settings: Settings, tmp_path: Path
) -> None:
    frame = bikeshare.copy()
    frame.loc[4100:4299, "weathersit"] = "tornado"  # 10% of chunk 3, 2.3% of the whole
    progress: list[str] = []
    summary = validate_snapshot_file(
        snapshot_file(frame, tmp_path),
        config,
        chunked(gx_settings, 2000),
        "training",
        "third",
        progress.append,
    )
    assert not summary.success
    assert list(failed_on(summary)) == [("expect_column_values_to_be_in_set", "weathersit")]
    observed = summary.failed[0].observed
    assert observed.startswith("chunk 3/5 (rows 4,000-5,999): 200 of 2000")
    assert "chunk 2/" not in observed and "chunk 4/" not in observed
    assert (
        len(progress) == 5 and "chunk 3/5" in progress[2] and "1 expectations failed" in progress[2]
    )
    # The last chunk (645 rows) is under the suite's 864-row minimum; the whole table is not.
    assert summary.quarantine_uri is not None
    quarantined = Path(summary.quarantine_uri) / "batch.parquet"
    pd.testing.assert_frame_equal(pd.read_parquet(quarantined), frame)


def test_one_chunk_gives_what_the_whole_frame_validation_gives(
    bikeshare: pd.DataFrame, config: PipelineConfig, tmp_path: Path
) -> None:
    frame = corrupt(bikeshare)
    frame["temp"] = frame["temp"].astype(str)  # Parquet takes one type per column
    uri = snapshot_file(frame, tmp_path)
    whole = validate_frame(frame, config, copy_gx(tmp_path / "a"), "training", "same")
    one = validate_snapshot_file(
        uri, config, copy_gx(tmp_path / "b"), "training", "same", lambda _: None
    )
    assert not whole.success
    ignored = {"quarantine_uri", "data_docs_url"}
    assert one.model_dump(exclude=ignored) == whole.model_dump(exclude=ignored)


def test_chunks_of_a_clean_snapshot_pass_and_the_row_count_is_judged_on_the_whole(
    bikeshare: pd.DataFrame, config: PipelineConfig, gx_settings: Settings, tmp_path: Path
) -> None:
    settings = chunked(gx_settings, 500)  # every chunk is under the suite's 864-row minimum
    summary = validate_snapshot_file(
        snapshot_file(bikeshare, tmp_path), config, settings, "training", "clean", lambda _: None
    )
    assert summary.success, summary.describe()
    short = validate_snapshot_file(
        snapshot_file(bikeshare.head(800), tmp_path / "short"),
        config,
        chunked(gx_settings, 300),
        "training",
        "short",
        lambda _: None,
    )
    assert [f.observed for f in short.failed] == ["observed 800 rows, expected 864..864500"]


def test_a_schema_finding_in_every_chunk_is_reported_once_as_is(
    bikeshare: pd.DataFrame, config: PipelineConfig, gx_settings: Settings, tmp_path: Path
) -> None:
    summary = validate_snapshot_file(
        snapshot_file(bikeshare.drop(columns=["hum"]), tmp_path),
        config,
        chunked(gx_settings, 3000),
        "training",
        "schema",
        lambda _: None,
    )
    failed = failed_on(summary)
    assert failed["expect_column_to_exist", "hum"].observed == "column is missing"
    assert failed["expect_column_values_to_not_be_null", "hum"].observed == (
        "not evaluated: the column is missing"
    )
