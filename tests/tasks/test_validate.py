"""The data-validation stage against the real Great Expectations context committed in the repo."""

from __future__ import annotations

import filecmp
import gc
import json
import logging
import shutil
import weakref
from pathlib import Path
from uuid import UUID

import numpy as np
import pandas as pd
import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterId,
    TaskRunFilter,
)
from prefect.client.schemas.sorting import ArtifactSort

from prefect_mlops.config import PipelineConfig, load_config, parse_config
from prefect_mlops.errors import DataValidationError
from prefect_mlops.io import write_parquet_atomic
from prefect_mlops.results import FailedExpectation, Snapshot, ValidationSummary
from prefect_mlops.settings import Settings
from tasks.validate import (
    INT_TYPES,
    NUMERIC_TYPES,
    TEXT_TYPES,
    enforce_data_gate,
    init_suites,
    profile_expectations,
    validate_frame,
    validate_snapshot,
)

ROOT = Path(__file__).resolve().parents[2]
COMMITTED_GX = ROOT / "great_expectations"


def copy_gx(tmp_path: Path) -> Settings:
    """Settings on a private copy of the committed GX project, so tests never write the repo."""
    gx_root = tmp_path / "great_expectations"
    shutil.copytree(COMMITTED_GX, gx_root, ignore=shutil.ignore_patterns("uncommitted"))
    return Settings(gx_root=gx_root, artifact_root=tmp_path / "artifacts")


@pytest.fixture
def gx_settings(tmp_path: Path) -> Settings:
    return copy_gx(tmp_path)


@pytest.fixture(scope="module")
def config() -> PipelineConfig:
    return load_config(ROOT / "configs" / "bikeshare.yaml")


@pytest.fixture(scope="module")
def corrupted(bikeshare: pd.DataFrame) -> pd.DataFrame:
    """The bikeshare rows with four kinds of damage a real feed produces."""
    frame = bikeshare.copy()
    frame["temp"] = frame["temp"].astype(object)
    frame.loc[[3, 40, 41], "temp"] = "n/a"  # numbers with strings mixed in
    frame.loc[range(10, 15), "bikers"] = np.nan  # target gaps
    frame.loc[range(100, 400), "weathersit"] = "tornado"  # unknown category flood, 3.5%
    return frame.drop(columns=["hum"])  # a column gone


@pytest.fixture(scope="module")
def corrupted_run(
    corrupted: pd.DataFrame, config: PipelineConfig, tmp_path_factory: pytest.TempPathFactory
) -> ValidationSummary:
    """One training-checkpoint run on the corrupted frame, shared by the tests that inspect it."""
    settings = copy_gx(tmp_path_factory.mktemp("corrupted"))
    return validate_frame(corrupted, config, settings, "training", batch_id="corrupted-batch")


def failed_on(summary: ValidationSummary) -> dict[tuple[str, str | None], FailedExpectation]:
    return {(f.expectation, f.column): f for f in summary.failed}


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


def test_corrupted_batch_fails_naming_each_problem(corrupted_run: ValidationSummary) -> None:
    assert not corrupted_run.success
    failed = failed_on(corrupted_run)
    temp_types = failed[("expect_column_values_to_be_in_type_list", "temp")].observed
    assert "3 of 8645" in temp_types
    assert "'n/a' (str)" in temp_types
    assert ("expect_column_values_to_be_between", "temp") in failed
    assert failed[("expect_column_values_to_not_be_null", "bikers")].observed.startswith("5 of")
    flood = failed[("expect_column_values_to_be_in_set", "weathersit")].observed
    assert "300 of 8645" in flood
    assert "'tornado'" in flood
    assert failed[("expect_column_to_exist", "hum")].observed == "column is missing"
    assert "missing columns ['hum']" in failed[("expect_table_columns_to_match_set", None)].observed
    assert "not evaluated" in failed[("expect_column_values_to_be_between", "hum")].observed


def test_a_failed_batch_gets_its_data_docs(corrupted_run: ValidationSummary) -> None:
    assert corrupted_run.data_docs_url is not None
    site = Path(corrupted_run.data_docs_url.removeprefix("file://")).parent
    assert "corrupted-batch" in (site / "index.html").read_text()
    pages = list((site / "validations").rglob("*.html"))
    assert {p.parts[-5:-2] for p in pages} == {
        ("bikeshare", "features", "training-corrupted-batch"),
        ("bikeshare", "training", "training-corrupted-batch"),
    }
    # The detailed report replaced the quick pass/fail one: one stored result per suite.
    stored = list((site.parents[1] / "validations").rglob("*.json"))
    assert len(stored) == 2, stored
    assert all("partial_unexpected_list" in p.read_text() for p in stored)
    assert not any('"unexpected_index_list"' in p.read_text() for p in stored)  # SUMMARY


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


def test_warn_policy_logs_and_continues(
    corrupted_run: ValidationSummary, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        enforce_data_gate.fn(corrupted_run, "warn")
    assert "expect_column_values_to_not_be_null on 'bikers'" in caplog.text
    assert "policy warn" in caplog.text


def test_fail_policy_raises_listing_every_failed_expectation(
    corrupted_run: ValidationSummary,
) -> None:
    with pytest.raises(DataValidationError) as raised:
        enforce_data_gate.fn(corrupted_run, "fail")
    message = str(raised.value)
    for failure in corrupted_run.failed:
        assert failure.expectation in message
    assert "weathersit" in message
    assert corrupted_run.quarantine_uri is not None
    assert corrupted_run.quarantine_uri in message


def test_gate_passes_a_successful_validation() -> None:
    passed = ValidationSummary(success=True, checkpoint="x.training", evaluated=3)
    enforce_data_gate.fn(passed, "fail")


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


def test_validate_snapshot_publishes_the_outcome_as_an_artifact(
    corrupted: pd.DataFrame, config: PipelineConfig, gx_settings: Settings
) -> None:
    path = gx_settings.snapshot_dir / "snap123.parquet"
    write_parquet_atomic(corrupted.astype({"temp": str}), path)
    snapshot = Snapshot(
        uri=str(path),
        fingerprint="snap123",
        rows=len(corrupted),
        columns=list(corrupted.columns),
        source="test",
    )

    @flow
    def validate_in_a_flow() -> ValidationSummary:
        return validate_snapshot(snapshot, config, gx_settings)

    state = validate_in_a_flow(return_state=True)
    summary = state.result()
    assert not summary.success
    assert summary.quarantine_uri is not None
    assert Path(summary.quarantine_uri).name == "snap123"
    markdown = artifact_of(state.state_details.flow_run_id, "validation-bikeshare")
    assert "Data validation **failed**" in markdown
    assert "| expect_column_values_to_be_in_set | weathersit |" in markdown
    assert "[Data Docs](file://" in markdown
    assert "Quarantined batch" in markdown


def artifact_of(flow_run_id: UUID | None, key: str) -> str:
    """The data of the artifact `key` created by one flow run (other tests share the server)."""
    # The sync client sends every parameter left out as null, which Prefect 3.8's server rejects
    # with a 422 (so does Artifact.get): spell them all out.
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
            task_run_filter=TaskRunFilter(),
            limit=10,
            offset=0,
            sort=ArtifactSort.UPDATED_DESC,
        )
    assert len(artifacts) == 1
    return str(artifacts[0].data)
