"""Features: infer the schema, check training data, and build the scikit-learn preprocessing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from prefect_mlops.config import PipelineConfig, TaskType
from prefect_mlops.errors import DataQualityError
from prefect_mlops.results import FeatureSchema
from prefect_mlops.transformers import CategoryText, DatetimeParts

# Rows of the data each probe of `nullable_features` predicts on.
PROBE_ROWS = 8


def infer_schema(frame: pd.DataFrame, config: PipelineConfig) -> FeatureSchema:
    """Sort feature columns into numeric, categorical and datetime, honouring the config."""
    excluded = {config.target, *config.exclude}
    if config.split.strategy == "time" and config.split.time_column not in config.datetime_features:
        excluded.add(str(config.split.time_column))  # the split clock is not a feature by default
    features = config.features or [c for c in frame.columns if c not in excluded]
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise DataQualityError(f"feature columns {missing} are not in the data")
    numeric, categorical, dates = [], [], []
    for column in features:
        dtype = frame[column].dtype
        if column in config.datetime_features:
            dates.append(column)
        elif column in config.categorical_features:
            categorical.append(column)
        elif pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype):
            if pd.api.types.is_datetime64_any_dtype(dtype):
                dates.append(column)
            else:
                categorical.append(column)
        else:
            numeric.append(column)
    return FeatureSchema(
        target=config.target,
        task=str(config.task),
        numeric=numeric,
        categorical=categorical,
        datetime=dates,
    )


def check_training_frame(frame: pd.DataFrame, schema: FeatureSchema) -> None:
    """Refuse data no model can be trained on, listing every problem at once."""
    problems: list[str] = []
    if schema.target not in frame.columns:
        raise DataQualityError(
            f"target column {schema.target!r} is absent; columns are {list(frame.columns)}"
        )
    target = frame[schema.target]
    if target.isna().all():
        problems.append(f"target column {schema.target!r} has no values")
    elif target.isna().any():
        problems.append(f"target column {schema.target!r} has {int(target.isna().sum())} nulls")
    if schema.task == TaskType.classification and target.nunique(dropna=True) < 2:
        problems.append(
            f"classification target {schema.target!r} has a single class "
            f"{target.dropna().unique().tolist()}; at least two are needed"
        )
    if schema.task == TaskType.regression and not pd.api.types.is_numeric_dtype(target):
        problems.append(f"regression target {schema.target!r} is {target.dtype}, not numeric")
    all_null = [c for c in schema.features if frame[c].isna().all()]
    if all_null:
        problems.append(f"feature columns {all_null} are entirely null")
    for column in schema.numeric:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            problems.append(f"numeric feature {column!r} has dtype {frame[column].dtype}")
    if not schema.features:
        problems.append("no feature columns remain after exclusions")
    if problems:
        raise DataQualityError("training data rejected: " + "; ".join(problems))


def build_preprocessor(schema: FeatureSchema) -> ColumnTransformer:
    """Impute and scale numbers, impute and one-hot categories, expand datetimes into parts."""
    transformers = []
    if schema.numeric:
        numeric = Pipeline(
            [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
        )
        transformers.append(("numeric", numeric, schema.numeric))
    if schema.categorical:
        categorical = Pipeline(
            [
                ("to_text", CategoryText()),
                ("impute", SimpleImputer(strategy="constant", fill_value="__missing__")),
                ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
            ]
        )
        transformers.append(("categorical", categorical, schema.categorical))
    if schema.datetime:
        dates = Pipeline(
            [
                ("parts", DatetimeParts()),
                ("impute", SimpleImputer(strategy="most_frequent")),
            ]
        )
        transformers.append(("datetime", dates, schema.datetime))
    return ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)


def nullable_features(model: Any, rows: pd.DataFrame) -> list[str]:
    """The features the fitted model answers a missing value of, in `rows`' column order.

    A feature is nullable when the pipeline predicts finite outputs on rows of the data with
    that feature missing: it goes through an imputer, or only through steps that accept NaN
    (HistGradientBoosting and the forests route it natively). A feature a step refuses NaN for
    (a scaler feeding a linear model, no imputer) is not. Features are probed in groups and a
    failing group is halved, so a pipeline that imputes everything costs one prediction.
    """
    sample = rows.head(PROBE_ROWS).reset_index(drop=True)
    if sample.empty:
        return []

    def answers(columns: Sequence[str]) -> bool:
        return _predicts_finite(model, with_missing(sample, columns))

    def search(columns: list[str]) -> list[str]:
        if answers(columns):
            return columns
        if len(columns) == 1:
            return []
        middle = len(columns) // 2
        return search(columns[:middle]) + search(columns[middle:])

    return search(list(sample.columns))


def with_missing(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """`frame` with `columns` entirely missing, typed as a request with nulls reaches the model:
    NaN in float columns, pandas' NA in integer ones (their other values stay integers), NaT in
    datetime columns, None in the rest."""
    out = frame.copy()
    for column in columns:
        dtype = out[column].dtype
        if pd.api.types.is_bool_dtype(dtype):
            out[column] = pd.Series([None] * len(out), dtype=object, index=out.index)
        elif pd.api.types.is_integer_dtype(dtype):
            out[column] = pd.Series(pd.NA, dtype="Int64", index=out.index)
        elif pd.api.types.is_float_dtype(dtype):
            out[column] = np.nan
        elif pd.api.types.is_datetime64_any_dtype(dtype):
            out[column] = pd.Series(pd.NaT, dtype=dtype, index=out.index)
        else:
            out[column] = pd.Series([None] * len(out), dtype=object, index=out.index)
    return out


def _predicts_finite(model: Any, frame: pd.DataFrame) -> bool:
    """The model predicts every row (and class probabilities, for a classifier), finite."""
    try:
        outputs = [np.asarray(model.predict(frame))]
        if hasattr(model, "predict_proba") and hasattr(model, "classes_"):
            outputs.append(np.asarray(model.predict_proba(frame)))
    except (ValueError, TypeError):  # how scikit-learn steps refuse NaN or None
        return False
    numeric = [o for o in outputs if o.dtype.kind in "fc"]
    return len(outputs[0]) == len(frame) and all(np.isfinite(o).all() for o in numeric)
