"""Summarising: a GX checkpoint result as a typed `ValidationSummary`, each failure in words."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from great_expectations.checkpoint.checkpoint import CheckpointResult
from great_expectations.core.expectation_validation_result import ExpectationValidationResult
from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

from prefect_mlops.expectations.suites import Purpose
from prefect_mlops.results import FailedExpectation, Snapshot, ValidationSummary

EXAMPLES_SHOWN = 3
# The order failures are listed in within one column: existence, then type, then nulls.
_RANK = {
    "expect_column_to_exist": 0,
    "expect_column_values_to_be_in_type_list": 1,
    "expect_column_values_to_not_be_null": 2,
}


def summarize_result(result: CheckpointResult, data_docs_url: str | None) -> ValidationSummary:
    """Wrap a checkpoint result: counts, and each failed expectation in words."""
    failures = [
        (item, _configuration(item))
        for run in result.run_results.values()
        for item in run.results
        if not item.success
    ]
    missing = {
        config.kwargs["column"] for _, config in failures if config.type == "expect_column_to_exist"
    }
    failed = [
        FailedExpectation(
            expectation=config.type,
            column=config.kwargs.get("column"),
            observed=describe_observed(item, missing_columns=missing),
        )
        for item, config in failures
    ]
    failed.sort(key=failure_order)
    return ValidationSummary(
        success=bool(result.success),
        checkpoint=result.checkpoint_config.name,
        evaluated=sum(
            int(run.statistics["evaluated_expectations"]) for run in result.run_results.values()
        ),
        failed=failed,
        data_docs_url=data_docs_url,
    )


def failure_order(failure: FailedExpectation) -> tuple[bool, str, int]:
    """Table-level findings first, then by column, a column's existence before its values."""
    return (failure.column is not None, failure.column or "", _RANK.get(failure.expectation, 9))


def describe_observed(
    item: ExpectationValidationResult, missing_columns: set[str] | frozenset[str] = frozenset()
) -> str:
    """A short account of what a failed expectation saw, e.g. "3 unexpected values, e.g. ['x']"."""
    configuration = _configuration(item)
    kind, kwargs = configuration.type, configuration.kwargs
    result = item.result or {}
    observed = result.get("observed_value")
    error = _exception_message(item.exception_info or {})
    if kind == "expect_column_to_exist":
        return "column is missing"
    if error is not None:
        if kwargs.get("column") in missing_columns or "does not exist" in error:
            return "not evaluated: the column is missing"
        return f"not evaluated: {error.splitlines()[0]}"
    if kind == "expect_table_columns_to_match_set":
        mismatch = result.get("details", {}).get("mismatched", {})
        parts = [f"{key} columns {sorted(value)}" for key, value in mismatch.items() if value]
        return "; ".join(parts) or f"observed columns {observed}"
    if kind == "expect_table_row_count_to_be_between":
        bounds = f"{kwargs.get('min_value')}..{kwargs.get('max_value')}"
        return f"observed {observed} rows, expected {bounds}"
    if kind == "expect_column_values_to_be_in_type_list" and observed is not None:
        return f"observed {observed!r}, expected one of {kwargs.get('type_list')}"
    if "unexpected_count" in result:
        count = int(result["unexpected_count"])
        share = f"{count} of {result.get('element_count')}"
        examples = result.get("partial_unexpected_list") or []
        if kind == "expect_column_values_to_not_be_null":
            return f"{share} values are null"
        if kind == "expect_column_values_to_be_in_type_list":
            return f"{share} values of other types, e.g. {_examples(examples, with_types=True)}"
        if kind == "expect_column_values_to_be_between":
            bounds = f"{kwargs.get('min_value')}..{kwargs.get('max_value')}"
            return f"{share} values outside {bounds}, e.g. {_examples(examples)}"
        return f"{share} unexpected values, e.g. {_examples(examples)}"
    return f"observed {observed!r}" if observed is not None else "failed"


def _configuration(item: ExpectationValidationResult) -> ExpectationConfiguration:
    """The expectation a result evaluated; GX types it optional, a checkpoint always sets it."""
    if item.expectation_config is None:
        raise ValueError(f"a validation result without its expectation: {item}")
    return item.expectation_config


def _exception_message(info: dict[str, Any]) -> str | None:
    """The first error raised while evaluating; GX nests one entry per metric that raised."""
    entries = [info] if "raised_exception" in info else list(info.values())
    for entry in entries:
        if isinstance(entry, dict) and entry.get("raised_exception"):
            return str(entry.get("exception_message") or "unknown error")
    return None


def _examples(values: list[Any], with_types: bool = False) -> str:
    distinct: list[Any] = []
    for value in values:
        if value not in distinct:
            distinct.append(value)
        if len(distinct) == EXAMPLES_SHOWN:
            break
    shown = [f"{v!r} ({type(v).__name__})" if with_types else repr(v) for v in distinct]
    return "[" + ", ".join(shown) + "]"


def validation_markdown(summary: ValidationSummary, purpose: Purpose, snapshot: Snapshot) -> str:
    """The validation outcome as markdown: verdict, failed expectations, where to look."""
    verdict = "passed" if summary.success else "**failed**"
    lines = [
        f"# Data validation {verdict}",
        "",
        f"Checkpoint `{summary.checkpoint}` ({purpose}) on snapshot `{snapshot.fingerprint}` "
        f"({snapshot.rows} rows): {summary.evaluated - len(summary.failed)} of "
        f"{summary.evaluated} expectations held.",
    ]
    if summary.failed:
        lines += ["", "| Expectation | Column | Observed |", "| --- | --- | --- |"]
        lines += [
            f"| {f.expectation} | {f.column or ''} | {_markdown_cell(f.observed)} |"
            for f in summary.failed
        ]
    lines.append("")
    if summary.data_docs_url:
        lines.append(f"- [Data Docs]({summary.data_docs_url})")
    if summary.quarantine_uri:
        folder = Path(summary.quarantine_uri)
        lines.append(f"- Quarantined batch: [{folder}]({folder.as_uri()})")
    return "\n".join(lines)


def _markdown_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
