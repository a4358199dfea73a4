"""The model's own scikit-learn transformers: public, stable names that logged pipelines reference.

A registered model stores the qualified name of every class and function its pipeline holds
(skops lists them as types to trust). Renaming or moving anything here breaks every version
already in a registry, so these names change only with a migration and a new compatibility
fixture under `tests/model/artifacts/`.

- `CategoryText` and `DatetimeParts` are what `build_preprocessor` uses since 0.2.0.
- `legacy_as_text` and `legacy_datetime_parts` are the functions that pipelines logged by 0.1.0
  hold inside `FunctionTransformer`s (referenced as `tasks.features._as_text` and
  `tasks.features.datetime_parts`, which `tasks.features` maps to these). Their bodies must not
  change: they compute what those models were trained with.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

DATETIME_PARTS = ("month", "day", "dayofweek", "hour")


def legacy_as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Categories as strings (nulls kept), as models logged by 0.1.0 compute them."""
    return frame.astype(str).where(frame.notna(), np.nan)


def legacy_datetime_parts(frame: pd.DataFrame) -> np.ndarray:
    """Month, day, weekday and hour of each column (NaN when unparseable), as in 0.1.0 models."""
    parts: list[pd.Series] = []
    for column in frame.columns:
        values = pd.to_datetime(frame[column], errors="coerce")
        parts.extend(getattr(values.dt, part).astype("float64") for part in DATETIME_PARTS)
    return np.column_stack(parts) if parts else np.empty((len(frame), 0))


class CategoryText(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Categories as strings with nulls kept, so mixed int/str columns encode consistently.

    One output column per input column, under the same name.
    """

    def fit(self, X: Any, y: Any = None) -> CategoryText:
        """Remember the input columns; nothing is learned."""
        validate_data(self, X, skip_check_array=True)
        return self

    def transform(self, X: Any) -> pd.DataFrame:
        """Each value as `str`, nulls as NaN."""
        check_is_fitted(self)
        return legacy_as_text(_as_frame(self, X))


class DatetimeParts(TransformerMixin, BaseEstimator):
    """Numeric parts of datetime columns (float, NaN when a value does not parse as a date).

    Values are parsed with `pd.to_datetime(column, errors="coerce")`; each column gives one output
    per part, in order, named `<column>_<part>`.

    Args:
        parts: attributes of pandas' `.dt` accessor to extract.
    """

    def __init__(self, parts: Sequence[str] = DATETIME_PARTS) -> None:
        self.parts = parts

    def fit(self, X: Any, y: Any = None) -> DatetimeParts:
        """Remember the input columns and check the parts are datetime fields."""
        fields = pd.Series(pd.DatetimeIndex([])).dt
        unknown = [p for p in self.parts if not isinstance(getattr(fields, p, None), pd.Series)]
        if unknown:
            raise ValueError(f"datetime parts {unknown} are not fields of pandas' .dt accessor")
        if not self.parts:
            raise ValueError("no datetime parts to extract")
        validate_data(self, X, skip_check_array=True)
        return self

    def transform(self, X: Any) -> np.ndarray:
        """One float column per part of each input column."""
        check_is_fitted(self)
        frame = _as_frame(self, X)
        parts: list[pd.Series] = []
        for column in frame.columns:
            values = pd.to_datetime(frame[column], errors="coerce")
            parts.extend(getattr(values.dt, part).astype("float64") for part in self.parts)
        return np.column_stack(parts) if parts else np.empty((len(frame), 0))

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """`<column>_<part>` for each input column and part."""
        check_is_fitted(self)
        columns = _input_names(self, input_features)
        return np.asarray([f"{c}_{p}" for c in columns for p in self.parts], dtype=object)


def _as_frame(step: BaseEstimator, X: Any) -> pd.DataFrame:
    """The input as a DataFrame, after checking it has the columns seen in fit."""
    validate_data(step, X, skip_check_array=True, reset=False)
    if isinstance(X, pd.DataFrame):
        return X
    return pd.DataFrame(np.asarray(X, dtype=object), columns=_input_names(step, None))


def _input_names(step: BaseEstimator, input_features: Any) -> np.ndarray:
    if input_features is not None:
        names = np.asarray(input_features, dtype=object)
        if len(names) != step.n_features_in_:
            raise ValueError(f"{len(names)} input features given, {step.n_features_in_} seen")
        return names
    known = getattr(step, "feature_names_in_", None)
    if known is not None:
        return np.asarray(known, dtype=object)
    return np.asarray([f"x{i}" for i in range(step.n_features_in_)], dtype=object)
