"""Features: infer the schema, check training data, and build the scikit-learn preprocessing."""

from __future__ import annotations

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from prefect_mlops.config import PipelineConfig, TaskType
from prefect_mlops.errors import DataQualityError
from prefect_mlops.results import FeatureSchema
from prefect_mlops.transformers import CategoryText, DatetimeParts


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
