"""Datetime parts of request values, as `prefect_mlops.transformers.DatetimeParts` computes them.

The training pipeline expands each datetime column with `pd.to_datetime(column,
errors="coerce")` and the `.dt` accessors. Running pandas for every request costs more than
the whole ONNX call, so the common cases are computed from Python `datetime` objects, and
everything else is handed to pandas itself:

- `datetime` / `pd.Timestamp` values (columns typed `datetime` in the signature): their own
  fields, which are pandas' fields for naive values;
- strings that all have the same canonical ISO-8601 shape (`2011-01-01`, `2011-01-01T05:00`,
  `2011-01-01 05:00:00.25`, ...): pandas infers that format from the first value and parses
  every value with it, which is what `datetime.fromisoformat` does; an impossible date is NaN;
- anything else (time zones, other formats, mixed shapes, dates outside pandas' nanosecond
  range, other types): `pd.to_datetime(..., errors="coerce")`, exactly as in training.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

PART_FIELDS: dict[str, Callable[[datetime], int]] = {
    "year": lambda d: d.year,
    "month": lambda d: d.month,
    "day": lambda d: d.day,
    "dayofweek": lambda d: d.weekday(),
    "weekday": lambda d: d.weekday(),
    "hour": lambda d: d.hour,
    "minute": lambda d: d.minute,
    "second": lambda d: d.second,
}
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)?")
_DIGIT = re.compile(r"\d")
# Years pandas' datetime64[ns] holds whole; outside it, pandas decides (NaT or an error).
_FIRST_YEAR, _LAST_YEAR = 1678, 2261


class UnsupportedPartError(ValueError):
    """A datetime part this module does not compute; the message names it."""


def check_parts(parts: Sequence[str]) -> tuple[str, ...]:
    """The parts, refused when one of them is not computed here."""
    unknown = [p for p in parts if p not in PART_FIELDS]
    if unknown:
        raise UnsupportedPartError(f"datetime parts {unknown} are not computed by the service")
    return tuple(parts)


def datetime_part_matrix(values: Sequence[Any], parts: Sequence[str]) -> np.ndarray:
    """One row per value, one float column per part; NaN where the value is not a date."""
    dates = _as_datetimes(values)
    if dates is None:
        return _pandas_parts(values, parts)
    getters = [PART_FIELDS[p] for p in parts]
    out = np.full((len(values), len(parts)), np.nan)
    for row, date in enumerate(dates):
        if date is not None:
            out[row] = [get(date) for get in getters]
    return out


def _as_datetimes(values: Sequence[Any]) -> list[datetime | None] | None:
    """The values as naive datetimes (None where missing or impossible); None: ask pandas."""
    present = [v for v in values if v is not None]
    if all(isinstance(v, datetime) for v in present):
        dates: list[datetime | None] = list(values)
    elif all(isinstance(v, str) for v in present):
        shapes = {_DIGIT.sub("0", v) for v in present}
        if len(shapes) > 1 or not all(_ISO.fullmatch(v) for v in present[:1]):
            return None
        dates = [None if v is None else _from_iso(v) for v in values]
    else:
        return None
    for date in dates:
        if date is not None and (
            date.tzinfo is not None or not _FIRST_YEAR <= date.year <= _LAST_YEAR
        ):
            return None
    return dates


def _from_iso(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:  # e.g. 2011-02-30: pandas coerces it to NaT
        return None


def _pandas_parts(values: Sequence[Any], parts: Sequence[str]) -> np.ndarray:
    stamps = pd.to_datetime(pd.Series(list(values), dtype=object), errors="coerce")
    return np.column_stack([getattr(stamps.dt, p).astype("float64").to_numpy() for p in parts])
