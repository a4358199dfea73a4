"""Shared task I/O: partial reads, atomic writes and handing freed heap back."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from prefect_mlops.io import read_parquet_head, write_table_atomic
from prefect_mlops.runtime import release_memory
from tasks.evaluate import compare_with_champion, evaluate_model
from tasks.ingest import snapshot_source
from tasks.schema import derive_schema
from tasks.split import split_snapshot
from tasks.train import fit_model, score_candidate
from tasks.validate import validate_snapshot


def test_head_reads_only_the_first_rows_of_the_named_columns(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    write_table_atomic(pa.table({"a": list(range(1000)), "b": ["x"] * 1000}), path)
    head = read_parquet_head(str(path), 5, columns=["a"])
    pd.testing.assert_frame_equal(head, pd.DataFrame({"a": range(5)}))
    assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"]  # no temporary file left


@pytest.mark.parametrize(
    "heavy",
    [
        snapshot_source,
        validate_snapshot,
        derive_schema,
        split_snapshot,
        score_candidate,
        fit_model,
        evaluate_model,
        compare_with_champion,
    ],
    ids=lambda t: t.name,
)
def test_data_heavy_tasks_release_memory_when_they_end(heavy) -> None:
    assert release_memory in heavy.on_completion_hooks
    assert release_memory in heavy.on_failure_hooks


def test_release_memory_takes_hook_arguments() -> None:
    assert release_memory(object(), object(), object()) is None
