"""The GX adapter's workarounds: each keeps its effect on a real context."""

from __future__ import annotations

import gc
import inspect
import json
import weakref
from enum import StrEnum
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from great_expectations.checkpoint.checkpoint import CheckpointResult
from great_expectations.expectations.registry import _registered_metrics

from prefect_mlops.config import PipelineConfig
from prefect_mlops.expectations import gx
from prefect_mlops.expectations.run import validate_frame
from prefect_mlops.results import ValidationSummary
from prefect_mlops.settings import Settings
from tests.prefect_mlops.expectations.helpers import corrupt


def test_gx_does_not_fingerprint_the_batch_a_second_time(
    bikeshare: pd.DataFrame, config: PipelineConfig, gx_settings: Settings
) -> None:
    summary = validate_frame(bikeshare, config, gx_settings, "scoring", batch_id="hash")
    assert summary.success, summary.describe()
    stored = list((gx_settings.gx_root / "uncommitted" / "validations").rglob("*.json"))
    assert len(stored) == 1
    markers = json.loads(stored[0].read_text())["meta"]["batch_markers"]
    assert "ge_load_time" in markers
    assert "pandas_data_fingerprint" not in markers


def test_validation_does_not_keep_the_frame_alive(
    bikeshare: pd.DataFrame, config: PipelineConfig, gx_settings: Settings
) -> None:
    # GX's process-wide context caches every batch it loads; a 1M-row frame would stay pinned.
    frame = bikeshare.head(500).copy()
    alive = weakref.ref(frame)
    summary = validate_frame(frame, config, gx_settings, "scoring", batch_id="pinned")
    assert summary.success, summary.describe()
    del frame
    gc.collect()
    assert alive() is None


def test_a_passing_batch_stores_only_the_quick_verdict(
    bikeshare: pd.DataFrame, gx_settings: Settings
) -> None:
    context = gx.open_context(gx_settings)
    checkpoint = gx.load_checkpoint(context, "bikeshare.scoring")
    result = gx.run_checkpoint(context, checkpoint, bikeshare, run_name="quick")
    assert result.success
    (stored,) = (gx_settings.gx_root / "uncommitted" / "validations").rglob("*.json")
    assert "partial_unexpected_list" not in stored.read_text()  # BOOLEAN_ONLY


def test_a_failing_batch_stores_the_summary_report_instead(
    corrupted_run: ValidationSummary,
) -> None:
    assert corrupted_run.data_docs_url is not None
    site = Path(corrupted_run.data_docs_url.removeprefix("file://")).parent
    # The detailed report replaced the quick pass/fail one: one stored result per suite.
    stored = list((site.parents[1] / "validations").rglob("*.json"))
    assert len(stored) == 2, stored
    assert all("partial_unexpected_list" in p.read_text() for p in stored)
    assert not any('"unexpected_index_list"' in p.read_text() for p in stored)  # SUMMARY


def test_copy_on_write_validation_answers_as_plain_gx(
    bikeshare: pd.DataFrame, gx_settings: Settings
) -> None:
    frame = corrupt(bikeshare)
    frame.loc[[7, 8], "hr"] = 99  # out of range
    frame.loc[[20, 21], "mnth"] = "Smarch"  # unknown, within `mostly`
    context = gx.open_context(gx_settings)
    checkpoint = gx.load_checkpoint(context, "bikeshare.training")
    ours = gx.run_checkpoint(context, checkpoint, frame, run_name="fast")
    assert pd.get_option("mode.copy_on_write") is False  # restored for the rest of the process
    plain = checkpoint.run(batch_parameters={"dataframe": frame})
    assert _outcomes(ours) == _outcomes(plain)
    assert not ours.success
    key = "expect_column_values_to_be_in_set", "mnth"
    (in_set,) = [o for o in _outcomes(ours) if o[:2] == key]
    assert in_set[2] and json.loads(in_set[3])["unexpected_count"] == 2  # `mostly` honoured


def _outcomes(result: CheckpointResult) -> list[tuple[str, str | None, bool, str]]:
    """Each expectation's type, column, verdict and result details, in a stable order."""
    return sorted(
        (
            r.expectation_config.type,
            r.expectation_config.kwargs.get("column"),
            bool(r.success),
            json.dumps(r.result, sort_keys=True, default=str),
        )
        for run in result.run_results.values()
        for r in run.results
    )


TEXT_TYPES = ["str", "object", "StringDtype", "CategoricalDtype"]
NUMBER_TYPES = ["int", "int64", "float", "float64", "Int64Dtype"]


class Weather(StrEnum):
    CLEAR = "clear"


@pytest.mark.parametrize(
    "values",
    [
        ["clear", "mist", "rain"],
        ["clear", np.str_("mist"), Weather.CLEAR],  # subclasses of str
        ["clear", 3, "rain"],
        ["clear", None, "rain"],
        ["clear", b"mist"],
        [1.5, 2.5],
        [],
    ],
)
@pytest.mark.parametrize("type_list", [TEXT_TYPES, NUMBER_TYPES, ["str_"], ["object"]])
def test_the_text_type_check_answers_as_gx_value_by_value(
    values: list[object], type_list: list[str]
) -> None:
    provider = _registered_metrics[gx.IN_TYPE_LIST_CONDITION]["providers"]["PandasExecutionEngine"]
    metric_class, plain_fn = provider
    plain = inspect.unwrap(plain_fn)  # GX's own isinstance map
    column = pd.Series(values, dtype=object, name="weathersit", index=range(5, 5 + len(values)))

    def by_value(c: pd.Series) -> pd.Series:
        return plain(metric_class, c, type_list=type_list)

    ours = gx.text_values_in_type_list(column, by_value)
    pd.testing.assert_series_equal(ours, by_value(column))


def test_text_mixed_with_other_values_is_judged_as_plain_gx_does(
    bikeshare: pd.DataFrame, gx_settings: Settings
) -> None:
    frame = bikeshare.copy()
    frame.loc[[5, 6], "mnth"] = 7  # a number among the month names: fails the type list
    registered = _registered_metrics[gx.IN_TYPE_LIST_CONDITION]["providers"].copy()
    context = gx.open_context(gx_settings)
    checkpoint = gx.load_checkpoint(context, "bikeshare.training")
    ours = gx.run_checkpoint(context, checkpoint, frame, run_name="fast")
    assert _registered_metrics[gx.IN_TYPE_LIST_CONDITION]["providers"] == registered  # restored
    plain = checkpoint.run(batch_parameters={"dataframe": frame})
    assert _outcomes(ours) == _outcomes(plain)
    key = "expect_column_values_to_be_in_type_list", "mnth"
    (in_types,) = [o for o in _outcomes(ours) if o[:2] == key]
    assert json.loads(in_types[3])["unexpected_count"] == 2
    weathersit = "expect_column_values_to_be_in_type_list", "weathersit"
    assert [o[2] for o in _outcomes(ours) if o[:2] == weathersit] == [True]


def test_an_unknown_checkpoint_is_a_lookup_error(gx_settings: Settings) -> None:
    context = gx.open_context(gx_settings)
    with pytest.raises(LookupError):
        gx.load_checkpoint(context, "nope.training")


def test_a_folder_without_a_project_is_not_one(tmp_path: Path, gx_settings: Settings) -> None:
    assert gx.project_exists(gx_settings)
    assert not gx.project_exists(Settings(gx_root=tmp_path / "none"))
