"""The model's own transformers compute what the legacy functions of 0.1.0 models compute."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.base import clone

from prefect_mlops.transformers import (
    DATETIME_PARTS,
    CategoryText,
    DatetimeParts,
    legacy_as_text,
    legacy_datetime_parts,
)


@pytest.fixture
def categories() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "colour": ["red", None, "blue", "red"],
            "code": [1, 2, None, 3],
            "flag": [True, False, True, None],
        },
    ).astype({"flag": object})


@pytest.fixture
def dates() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "text": ["2024-03-05T07:00:00", None, "not a date", "2024-12-31T23:59:00"],
            "stamp": [
                pd.Timestamp("2024-01-01"),
                pd.NaT,
                pd.Timestamp("2024-06-15 12:00"),
                pd.Timestamp("2025-02-28"),
            ],
        }
    )


def test_category_text_is_the_legacy_function(categories: pd.DataFrame) -> None:
    got = CategoryText().fit(categories).transform(categories)
    pd.testing.assert_frame_equal(got, legacy_as_text(categories))


def test_category_text_makes_strings_and_keeps_nulls(categories: pd.DataFrame) -> None:
    got = CategoryText().fit_transform(categories)
    assert got["code"].tolist()[:2] == ["1.0", "2.0"]
    assert got.isna().sum().tolist() == [1, 1, 1]


def test_category_text_names_outputs_one_to_one(categories: pd.DataFrame) -> None:
    step = CategoryText().fit(categories)
    assert step.get_feature_names_out().tolist() == ["colour", "code", "flag"]


def test_category_text_refuses_other_columns_than_fitted(categories: pd.DataFrame) -> None:
    step = CategoryText().fit(categories)
    with pytest.raises(ValueError, match="feature names"):
        step.transform(categories.rename(columns={"code": "other"}))


def test_datetime_parts_is_the_legacy_function(dates: pd.DataFrame) -> None:
    got = DatetimeParts().fit(dates).transform(dates)
    np.testing.assert_array_equal(got, legacy_datetime_parts(dates))


def test_datetime_parts_extracts_month_day_weekday_hour() -> None:
    frame = pd.DataFrame({"t": ["2024-03-05T07:00:00", None]})
    parts = DatetimeParts().fit_transform(frame)
    assert DatetimeParts().parts == DATETIME_PARTS == ("month", "day", "dayofweek", "hour")
    assert parts[0].tolist() == [3, 5, 1, 7]
    assert np.isnan(parts[1]).all()
    assert parts.dtype == np.float64


def test_datetime_parts_computes_the_parts_it_is_given(dates: pd.DataFrame) -> None:
    step = DatetimeParts(parts=("year", "minute")).fit(dates)
    assert step.transform(dates)[3].tolist() == [2024, 59, 2025, 0]
    assert step.get_feature_names_out().tolist() == [
        "text_year",
        "text_minute",
        "stamp_year",
        "stamp_minute",
    ]


def test_datetime_parts_refuses_what_is_not_a_date_field(dates: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"\['tz'\]"):
        DatetimeParts(parts=("month", "tz")).fit(dates)
    with pytest.raises(ValueError, match="no datetime parts"):
        DatetimeParts(parts=()).fit(dates)


def test_transformers_clone_with_their_parameters() -> None:
    assert clone(DatetimeParts(parts=("hour",))).parts == ("hour",)
    assert clone(CategoryText()).get_params() == {}


def test_transformers_round_trip_through_skops(dates: pd.DataFrame) -> None:
    step = DatetimeParts(parts=("day",)).fit(dates)
    data = skops.io.dumps(step)
    untrusted = skops.io.get_untrusted_types(data=data)
    assert untrusted == ["prefect_mlops.transformers.DatetimeParts"]
    loaded = skops.io.loads(data, trusted=untrusted)
    np.testing.assert_array_equal(loaded.transform(dates), step.transform(dates))
