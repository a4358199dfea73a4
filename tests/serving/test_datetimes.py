"""The service's datetime parts equal the training pipeline's (`DatetimeParts`)."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from prefect_mlops.transformers import DATETIME_PARTS, DatetimeParts
from serving import datetimes
from serving.datetimes import UnsupportedPartError, check_parts, datetime_part_matrix

HOURS = pd.date_range("2011-01-01", periods=500, freq="97min")


def _training_parts(values: list) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pandas' "could not infer format"
        frame = pd.DataFrame({"when": pd.Series(values, dtype=object)})
        return DatetimeParts().fit(frame).transform(frame)


CASES = {
    "iso with T": [t.strftime("%Y-%m-%dT%H:%M:%S") for t in HOURS],
    "iso with a space": [t.strftime("%Y-%m-%d %H:%M:%S") for t in HOURS],
    "iso without seconds": [t.strftime("%Y-%m-%d %H:%M") for t in HOURS],
    "date only": [t.strftime("%Y-%m-%d") for t in HOURS],
    "fractions of a second": [t.strftime("%Y-%m-%dT%H:%M:%S.%f") for t in HOURS],
    "impossible dates and gaps": ["2011-02-30T01:00:00", None, "2011-13-01T00:00:00"]
    + [t.strftime("%Y-%m-%dT%H:%M:%S") for t in HOURS[:50]],
    "first value impossible": ["2011-02-30", "2011-03-01", "2011-03-02"],
    "mixed shapes": ["2011-01-01T05:00:00", "2011-01-02 06:00:00", "2011-01-03"],
    "garbage and empty text": ["2011-01-01T05:00:00", "not a date", "", "2011-01-03T07:00:00"],
    "other formats": [t.strftime("%d/%m/%Y %H:%M") for t in HOURS],
    "time zone offsets": [t.strftime("%Y-%m-%dT%H:%M:%S+02:00") for t in HOURS[:50]],
    "out of pandas' range": ["1500-01-01T00:00:00", "2011-01-01T05:00:00"],
    "all missing": [None, None],
    "datetime objects": [t.to_pydatetime() for t in HOURS],
    "timestamps and gaps": [*HOURS[:100], None, pd.NaT],
    "aware datetimes": [
        datetime(2011, 5, 1, 23, tzinfo=UTC) + timedelta(hours=h) for h in range(9)
    ],
}


@pytest.mark.parametrize("values", CASES.values(), ids=CASES.keys())
def test_parts_equal_the_training_pipeline(values: list) -> None:
    values = [None if v is pd.NaT else v for v in values]  # requests carry None for missing
    got = datetime_part_matrix(values, DATETIME_PARTS)
    np.testing.assert_array_equal(got, _training_parts(values))


def test_canonical_iso_text_is_parsed_without_pandas(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> np.ndarray:
        raise AssertionError("pandas was asked")

    monkeypatch.setattr(datetimes, "_pandas_parts", refuse)
    got = datetime_part_matrix(["2011-07-04T08:00:00", None, "2011-02-30T00:00:00"], ["hour"])
    np.testing.assert_array_equal(got, [[8.0], [np.nan], [np.nan]])


def test_unknown_part_is_refused_by_name() -> None:
    with pytest.raises(UnsupportedPartError, match="fortnight"):
        check_parts(["month", "fortnight"])
