"""Checkpoint results in words: every failure named with what it saw, and as markdown."""

from __future__ import annotations

from pathlib import Path

from prefect_mlops.expectations.summary import validation_markdown
from prefect_mlops.results import FailedExpectation, Snapshot, ValidationSummary
from tests.prefect_mlops.expectations.helpers import failed_on


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


def test_failures_list_table_findings_first_then_each_column_existence_first(
    corrupted_run: ValidationSummary,
) -> None:
    columns = [f.column for f in corrupted_run.failed]
    table_first = [column is not None for column in columns]
    assert table_first == sorted(table_first) and not table_first[0]
    named = [column for column in columns if column is not None]
    assert named == sorted(named)
    hum = [f.expectation for f in corrupted_run.failed if f.column == "hum"]
    assert hum[0] == "expect_column_to_exist"


def test_markdown_names_the_verdict_each_failure_and_where_to_look(tmp_path: Path) -> None:
    summary = ValidationSummary(
        success=False,
        checkpoint="toy.training",
        evaluated=4,
        failed=[FailedExpectation(expectation="expect_x", column="a", observed="1 | 2\nthree")],
        data_docs_url="file:///docs/index.html",
        quarantine_uri=str(tmp_path / "batch"),
    )
    snapshot = Snapshot(uri="s.parquet", fingerprint="abc", rows=10, columns=["a"], source="t")
    markdown = validation_markdown(summary, "training", snapshot)
    assert markdown.startswith("# Data validation **failed**")
    assert "on snapshot `abc` (10 rows): 3 of 4 expectations held" in markdown
    assert "| expect_x | a | 1 \\| 2 three |" in markdown
    assert "- [Data Docs](file:///docs/index.html)" in markdown
    assert f"({(tmp_path / 'batch').as_uri()})" in markdown
