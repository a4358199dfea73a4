"""Fixtures of the expectations tests: the committed GX project copied, the bikeshare config."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from prefect_mlops.config import PipelineConfig, load_config
from prefect_mlops.expectations.run import validate_frame
from prefect_mlops.results import ValidationSummary
from prefect_mlops.settings import Settings
from tests.prefect_mlops.expectations.helpers import ROOT, copy_gx, corrupt


@pytest.fixture
def gx_settings(tmp_path: Path) -> Settings:
    return copy_gx(tmp_path)


@pytest.fixture(scope="session")
def config() -> PipelineConfig:
    return load_config(ROOT / "configs" / "bikeshare.yaml")


@pytest.fixture(scope="session")
def corrupted(bikeshare: pd.DataFrame) -> pd.DataFrame:
    return corrupt(bikeshare)


@pytest.fixture(scope="session")
def corrupted_run(
    corrupted: pd.DataFrame, config: PipelineConfig, tmp_path_factory: pytest.TempPathFactory
) -> ValidationSummary:
    """One training-checkpoint run on the corrupted frame, shared by the tests that inspect it."""
    settings = copy_gx(tmp_path_factory.mktemp("corrupted"))
    return validate_frame(corrupted, config, settings, "training", batch_id="corrupted-batch")
