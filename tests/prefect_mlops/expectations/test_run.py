"""validate_frame against a copy of the real GX project committed in the repo."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from prefect_mlops.config import PipelineConfig
from prefect_mlops.errors import DataValidationError
from prefect_mlops.expectations.run import validate_frame
from prefect_mlops.results import ValidationSummary
from prefect_mlops.settings import Settings
from tests.prefect_mlops.expectations.helpers import copy_gx, failed_on


def test_bikeshare_passes_its_training_checkpoint(
    bikeshare: pd.DataFrame, config: PipelineConfig, gx_settings: Settings
) -> None:
    summary = validate_frame(bikeshare, config, gx_settings, "training", batch_id="full")
    assert summary.success, summary.describe()
    assert summary.checkpoint == "bikeshare.training"
    assert summary.evaluated > 40
    assert summary.quarantine_uri is None
    assert summary.data_docs_url is None  # validation.data_docs: on_failure
    assert not gx_settings.quarantine_dir.exists()


def test_data_docs_are_built_after_every_run_when_asked(
    bikeshare: pd.DataFrame, config: PipelineConfig, gx_settings: Settings
) -> None:
    always = config.model_copy(
        update={"validation": config.validation.model_copy(update={"data_docs": "always"})}
    )
    summary = validate_frame(bikeshare, always, gx_settings, "training", batch_id="docs")
    assert summary.success, summary.describe()
    assert summary.data_docs_url is not None
    assert summary.data_docs_url.startswith("file://")
    assert summary.data_docs_url.endswith("/index.html")
    site = Path(summary.data_docs_url.removeprefix("file://")).parent
    assert (site / "index.html").is_file()
    pages = list((site / "validations").rglob("*.html"))
    assert {p.parts[-5:-2] for p in pages} == {
        ("bikeshare", "features", "training-docs"),
        ("bikeshare", "training", "training-docs"),
    }


@pytest.mark.parametrize("months", [(1, 2, 3), (10, 11, 12)], ids=["jan-mar", "oct-dec"])
def test_a_season_passes_the_scoring_checkpoint(
    bikeshare: pd.DataFrame, config: PipelineConfig, gx_settings: Settings, months: tuple[int, ...]
) -> None:
    season = bikeshare[pd.to_datetime(bikeshare["timestamp"]).dt.month.isin(months)]
    summary = validate_frame(season, config, gx_settings, "scoring", batch_id="season")
    assert summary.success, summary.describe()
    assert summary.checkpoint == "bikeshare.scoring"


def test_scoring_needs_no_target_and_tolerates_extra_columns(
    bikeshare: pd.DataFrame, config: PipelineConfig, gx_settings: Settings
) -> None:
    requests = bikeshare.drop(columns=["bikers", "casual", "registered"]).assign(request_id=1)
    summary = validate_frame(requests, config, gx_settings, "scoring", batch_id="requests")
    assert summary.success, summary.describe()


def test_a_failed_batch_gets_its_data_docs(corrupted_run: ValidationSummary) -> None:
    assert corrupted_run.data_docs_url is not None
    site = Path(corrupted_run.data_docs_url.removeprefix("file://")).parent
    assert "corrupted-batch" in (site / "index.html").read_text()
    pages = list((site / "validations").rglob("*.html"))
    assert {p.parts[-5:-2] for p in pages} == {
        ("bikeshare", "features", "training-corrupted-batch"),
        ("bikeshare", "training", "training-corrupted-batch"),
    }


def test_wrong_dtype_and_extra_column_are_failed_expectations_not_errors(
    bikeshare: pd.DataFrame, config: PipelineConfig, gx_settings: Settings
) -> None:
    changed = bikeshare.assign(windspeed=bikeshare["windspeed"].astype("string"), surprise=0.5)
    summary = validate_frame(changed, config, gx_settings, "training", batch_id="changed")
    failed = failed_on(summary)
    observed = failed[("expect_column_values_to_be_in_type_list", "windspeed")].observed
    assert observed.startswith("observed 'str', expected one of ['int',")
    assert (
        "unexpected columns ['surprise']"
        in failed[("expect_table_columns_to_match_set", None)].observed
    )


def test_missing_suite_tells_the_user_to_run_suite_init(
    bikeshare: pd.DataFrame, config: PipelineConfig, gx_settings: Settings
) -> None:
    (gx_settings.gx_root / "expectations" / "bikeshare" / "features.json").unlink()
    with pytest.raises(DataValidationError, match="mlops suite init --config"):
        validate_frame(bikeshare, config, gx_settings, "scoring", batch_id="b")


def test_unknown_suite_and_missing_project_give_the_same_hint(
    bikeshare: pd.DataFrame, config: PipelineConfig, tmp_path: Path
) -> None:
    other = config.model_copy(
        update={"validation": config.validation.model_copy(update={"suite": "nope"})}
    )
    with pytest.raises(DataValidationError, match=r"'nope\.training'.*mlops suite init"):
        validate_frame(bikeshare, other, copy_gx(tmp_path / "a"), "training", batch_id="b")
    empty = Settings(gx_root=tmp_path / "no-gx", artifact_root=tmp_path / "artifacts")
    with pytest.raises(DataValidationError, match="mlops suite init"):
        validate_frame(bikeshare, config, empty, "training", batch_id="b")
    assert not empty.gx_root.exists()
