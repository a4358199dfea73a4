"""Profiling reference data into suites, and writing them into a GX project."""

from __future__ import annotations

import filecmp
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prefect_mlops.config import PipelineConfig, parse_config
from prefect_mlops.errors import DataQualityError
from prefect_mlops.expectations.profile import (
    INT_TYPES,
    NUMERIC_TYPES,
    TEXT_TYPES,
    init_suites,
    profile_expectations,
)
from prefect_mlops.expectations.run import validate_frame
from prefect_mlops.settings import Settings
from tests.prefect_mlops.expectations.helpers import COMMITTED_GX, ROOT


@pytest.fixture
def toy_config() -> PipelineConfig:
    return parse_config(
        {
            "name": "toy",
            "task": "regression",
            "target": "y",
            "source": {"kind": "csv", "path": "toy.csv"},
            "categorical_features": ["store"],
            "exclude": ["row_id"],
            "split": {"strategy": "time", "time_column": "ts"},
            "candidates": [{"name": "ridge", "estimator": "linear"}],
            "gate": {"primary_metric": "rmse"},
            "validation": {"suite": "toy"},
            "registered_model_name": "toy",
        }
    )


@pytest.fixture
def toy() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ts": pd.date_range("2024-01-01", periods=10, freq="h").astype(str),
            "row_id": range(10),
            "temp": np.arange(10, dtype=float),
            "hum": [0.5, None, 0.6, 0.7, 0.4, 0.5, 0.5, 0.6, 0.3, 0.2],
            "city": ["oslo", "rome"] * 5,
            "store": [1, 2, 3, 1, 2, 3, 1, 2, 3, 1],
            "y": np.linspace(1.0, 2.0, 10),
        }
    )


def by_column(expectations: list) -> dict[str | None, dict[str, dict]]:
    """{column: {expectation type: kwargs}} for compact assertions."""
    found: dict[str | None, dict[str, dict]] = {}
    for expectation in expectations:
        kwargs = dict(expectation.configuration.kwargs)
        found.setdefault(kwargs.pop("column", None), {})[expectation.configuration.type] = kwargs
    return found


def test_profile_expectations_builds_a_reviewable_starting_suite(
    toy: pd.DataFrame, toy_config: PipelineConfig
) -> None:
    suites = profile_expectations(toy, toy_config)
    assert set(suites) == {"toy.features", "toy.training"}
    features = by_column(suites["toy.features"])
    assert set(features) == {"ts", "temp", "hum", "city", "store"}  # not row_id, not the target

    assert features["temp"]["expect_column_values_to_be_in_type_list"]["type_list"] == NUMERIC_TYPES
    assert features["temp"]["expect_column_values_to_not_be_null"] == {}
    between = features["temp"]["expect_column_values_to_be_between"]
    assert between["min_value"] == pytest.approx(-0.9)
    assert between["max_value"] == pytest.approx(9.9)
    assert features["hum"]["expect_column_values_to_not_be_null"]["mostly"] == pytest.approx(0.78)

    assert features["city"]["expect_column_values_to_be_in_type_list"]["type_list"] == TEXT_TYPES
    in_set = features["city"]["expect_column_values_to_be_in_set"]
    assert in_set == {"value_set": ["oslo", "rome"], "mostly": 0.99}
    assert features["store"]["expect_column_values_to_be_in_type_list"]["type_list"] == INT_TYPES
    assert features["store"]["expect_column_values_to_be_in_set"]["value_set"] == [1, 2, 3]

    assert set(features["ts"]) == {"expect_column_to_exist", "expect_column_values_to_not_be_null"}
    assert features["ts"]["expect_column_values_to_not_be_null"] == {}

    training = by_column(suites["toy.training"])
    assert set(training["y"]) == {
        "expect_column_to_exist",
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_in_type_list",
    }
    assert training[None]["expect_table_row_count_to_be_between"] == {
        "min_value": 1,
        "max_value": 1000,
    }
    assert set(training[None]["expect_table_columns_to_match_set"]["column_set"]) == set(toy)


def test_profile_expectations_pins_the_classes_of_a_classifier(
    toy: pd.DataFrame, toy_config: PipelineConfig
) -> None:
    classifier = toy_config.model_copy(update={"task": "classification"})
    frame = toy.assign(y=["low", "high"] * 5)
    training = by_column(profile_expectations(frame, classifier)["toy.training"])
    assert training["y"]["expect_column_values_to_be_in_set"] == {"value_set": ["high", "low"]}


def test_init_suites_twice_rewrites_the_same_files(
    toy: pd.DataFrame, toy_config: PipelineConfig, tmp_path: Path
) -> None:
    settings = Settings(gx_root=tmp_path / "gx", artifact_root=tmp_path / "artifacts")
    created = init_suites(toy_config, settings, toy)
    assert created == [
        "expectation suite toy.features",
        "expectation suite toy.training",
        "validation definition toy.features",
        "validation definition toy.training",
        "checkpoint toy.training",
        "checkpoint toy.scoring",
    ]
    first = tmp_path / "first"
    shutil.copytree(settings.gx_root, first, ignore=shutil.ignore_patterns("uncommitted"))
    assert init_suites(toy_config, settings, toy) == created
    comparison = filecmp.dircmp(first, settings.gx_root, ignore=["uncommitted"])
    assert_same_tree(comparison)
    assert "progress_bars" in (settings.gx_root / "great_expectations.yml").read_text()
    summary = validate_frame(toy, toy_config, settings, "training", batch_id="toy")
    assert summary.success, summary.describe()


def assert_same_tree(comparison: filecmp.dircmp) -> None:
    assert not comparison.left_only and not comparison.right_only
    _, mismatch, errors = filecmp.cmpfiles(
        comparison.left, comparison.right, comparison.common_files, shallow=False
    )
    assert mismatch == [] and errors == []
    for sub in comparison.subdirs.values():
        assert_same_tree(sub)


def test_committed_project_has_no_machine_paths() -> None:
    for path in COMMITTED_GX.rglob("*"):
        if path.is_file() and "uncommitted" not in path.parts:
            text = path.read_text()
            assert str(ROOT) not in text and "/tmp/" not in text, path


def test_profiling_needs_the_target_column(toy: pd.DataFrame, toy_config: PipelineConfig) -> None:
    with pytest.raises(DataQualityError, match="needs the target column 'y'"):
        profile_expectations(toy.drop(columns=["y"]), toy_config)
