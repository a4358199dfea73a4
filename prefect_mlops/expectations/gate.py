"""The data gate: a failed validation stops the run (policy fail) or is reported (warn)."""

from __future__ import annotations

from typing import Literal

from prefect_mlops.errors import DataValidationError
from prefect_mlops.results import ValidationSummary

GatePolicy = Literal["fail", "warn"]


def check_data_gate(
    summary: ValidationSummary, policy: GatePolicy, subject: str = "data"
) -> str | None:
    """Raise `DataValidationError` listing every failed expectation (fail); the warning (warn).

    Returns None for a passed validation. `subject` names the data in the message, e.g.
    "scoring data" gives "scoring data validation failed".
    """
    if summary.success:
        return None
    where = [f"Data Docs: {summary.data_docs_url}"] if summary.data_docs_url else []
    where += [f"quarantined batch: {summary.quarantine_uri}"] if summary.quarantine_uri else []
    message = "\n".join([f"{subject} validation failed", summary.describe(), *where])
    if policy == "fail":
        raise DataValidationError(message)
    return f"{message}\n(policy warn: the run continues)"
