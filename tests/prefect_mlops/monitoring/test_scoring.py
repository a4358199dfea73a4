"""Scoring both sides: schema problems of the window against the model's reference."""

from __future__ import annotations

import pandas as pd

from prefect_mlops.monitoring.scoring import schema_problems


def test_schema_problems_name_missing_and_retyped_columns() -> None:
    reference = pd.DataFrame({"a": [1.0], "b": ["x"], "c": [2]})
    current = pd.DataFrame({"a": ["1.0"], "c": [3]})
    assert schema_problems(reference, current, ["a", "b", "c"]) == [
        "a: type changed from float64 to object",
        "b: missing from the current data",
    ]
