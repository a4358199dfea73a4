"""Helpers shared by the expectations tests and the validate task tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from prefect_mlops.results import FailedExpectation, ValidationSummary
from prefect_mlops.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
COMMITTED_GX = ROOT / "great_expectations"


def copy_gx(tmp_path: Path) -> Settings:
    """Settings on a private copy of the committed GX project, so tests never write the repo."""
    gx_root = tmp_path / "great_expectations"
    shutil.copytree(COMMITTED_GX, gx_root, ignore=shutil.ignore_patterns("uncommitted"))
    return Settings(gx_root=gx_root, artifact_root=tmp_path / "artifacts")


def corrupt(bikeshare: pd.DataFrame) -> pd.DataFrame:
    """The bikeshare rows with four kinds of damage a real feed produces."""
    frame = bikeshare.copy()
    frame["temp"] = frame["temp"].astype(object)
    frame.loc[[3, 40, 41], "temp"] = "n/a"  # numbers with strings mixed in
    frame.loc[range(10, 15), "bikers"] = np.nan  # target gaps
    frame.loc[range(100, 400), "weathersit"] = "tornado"  # unknown category flood, 3.5%
    return frame.drop(columns=["hum"])  # a column gone


def failed_on(summary: ValidationSummary) -> dict[tuple[str, str | None], FailedExpectation]:
    """The failed expectations of a summary by (expectation, column)."""
    return {(f.expectation, f.column): f for f in summary.failed}
