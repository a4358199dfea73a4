"""Quarantine: a failed batch is kept with its summary, whatever its columns hold."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from prefect_mlops.expectations.quarantine import quarantine_batch
from prefect_mlops.results import ValidationSummary


def test_failed_batch_is_quarantined_with_its_summary(
    corrupted_run: ValidationSummary, corrupted: pd.DataFrame
) -> None:
    assert corrupted_run.quarantine_uri is not None
    folder = Path(corrupted_run.quarantine_uri)
    assert folder.name == "corrupted-batch"
    assert folder.parent.name == "quarantine"
    kept = pd.read_parquet(folder / "batch.parquet")
    assert kept.shape == corrupted.shape
    assert kept.loc[3, "temp"] == "n/a"
    stored = ValidationSummary.model_validate_json((folder / "summary.json").read_text())
    assert stored == corrupted_run


def test_a_column_of_mixed_types_is_kept_as_text(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": [1.5, "n/a", None], "y": [1, 2, 3]})
    failed = ValidationSummary(success=False, checkpoint="toy.scoring", evaluated=1)
    summary = quarantine_batch(frame, failed, tmp_path / "b1")
    assert summary.quarantine_uri == str((tmp_path / "b1").resolve())
    kept = pd.read_parquet(tmp_path / "b1" / "batch.parquet")
    assert kept["x"].tolist() == ["1.5", "n/a", None]
    assert kept["y"].tolist() == [1, 2, 3]
    assert frame["x"].tolist()[:2] == [1.5, "n/a"]  # the caller's frame is untouched
