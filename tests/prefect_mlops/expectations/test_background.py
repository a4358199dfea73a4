"""The checkpoint opened on a thread: the same validation as opened in line, errors intact."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

from prefect_mlops.config import PipelineConfig
from prefect_mlops.errors import DataValidationError
from prefect_mlops.expectations.background import open_checkpoint_in_background
from prefect_mlops.expectations.chunked import validate_snapshot_file
from prefect_mlops.io import write_parquet_atomic
from prefect_mlops.settings import Settings
from tests.prefect_mlops.expectations.helpers import copy_gx, corrupt


@pytest.mark.parametrize("chunk_rows", [1_000_000, 3000])  # one chunk, then three
def test_a_checkpoint_opened_in_the_background_validates_as_one_opened_in_line(
    bikeshare: pd.DataFrame, config: PipelineConfig, tmp_path: Path, chunk_rows: int
) -> None:
    frame = corrupt(bikeshare)
    frame["temp"] = frame["temp"].astype(str)  # Parquet takes one type per column
    uri = tmp_path / "snapshot.parquet"
    write_parquet_atomic(frame, uri)
    summaries = []
    for side in ("in-line", "background"):
        settings = copy_gx(tmp_path / side).model_copy(update={"validation_chunk_rows": chunk_rows})
        opened = (
            open_checkpoint_in_background(config, settings, "training").result(timeout=120)
            if side == "background"
            else None
        )
        summary = validate_snapshot_file(
            str(uri), config, settings, "training", "same", lambda _: None, opened
        )
        summaries.append(summary.model_copy(update={"data_docs_url": None, "quarantine_uri": None}))
    assert not summaries[0].success and summaries[0].failed
    assert summaries[1] == summaries[0]


def test_a_missing_project_is_raised_by_the_result(config: PipelineConfig, tmp_path: Path) -> None:
    interval = sys.getswitchinterval()
    future = open_checkpoint_in_background(config, Settings(gx_root=tmp_path / "none"), "training")
    with pytest.raises(DataValidationError, match="mlops suite init"):
        future.result(timeout=120)
    assert sys.getswitchinterval() == interval  # the import's shorter interval is undone
