"""The data gate shared by training and scoring: one message listing every failure, or a warning."""

from __future__ import annotations

import pytest

from prefect_mlops.errors import DataValidationError
from prefect_mlops.expectations.gate import GatePolicy, check_data_gate
from prefect_mlops.results import FailedExpectation, ValidationSummary


@pytest.fixture
def failed() -> ValidationSummary:
    return ValidationSummary(
        success=False,
        checkpoint="toy.training",
        evaluated=5,
        failed=[
            FailedExpectation(expectation="expect_column_to_exist", column="a", observed="gone"),
            FailedExpectation(expectation="expect_column_values_to_be_in_set", column="b"),
            FailedExpectation(expectation="expect_table_row_count_to_be_between"),
        ],
        data_docs_url="file:///docs/index.html",
        quarantine_uri="/q/batch",
    )


def test_fail_raises_one_error_listing_every_failed_expectation(
    failed: ValidationSummary,
) -> None:
    with pytest.raises(DataValidationError) as raised:
        check_data_gate(failed, "fail")
    message = str(raised.value)
    assert message.startswith("data validation failed\ncheckpoint toy.training: 3 of 5 failed")
    for failure in failed.failed:
        assert failure.expectation in message
    assert "expect_column_to_exist on 'a': gone" in message
    assert "Data Docs: file:///docs/index.html" in message
    assert "quarantined batch: /q/batch" in message


def test_warn_returns_the_same_account_without_raising(failed: ValidationSummary) -> None:
    warning = check_data_gate(failed, "warn", subject="scoring data")
    assert warning is not None
    assert warning.startswith("scoring data validation failed\n")
    assert all(f.expectation in warning for f in failed.failed)
    assert warning.endswith("(policy warn: the run continues)")


@pytest.mark.parametrize("policy", ["fail", "warn"])
def test_a_passed_validation_passes_the_gate(policy: GatePolicy) -> None:
    passed = ValidationSummary(success=True, checkpoint="toy.training", evaluated=3)
    assert check_data_gate(passed, policy) is None
