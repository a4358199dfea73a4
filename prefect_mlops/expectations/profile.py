"""Profiling: reference data into starting expectation suites, written for a person to review."""

from __future__ import annotations

import math
from typing import Any

import great_expectations.expectations as gxe
import pandas as pd
from great_expectations.expectations.expectation import Expectation

from prefect_mlops.config import PipelineConfig, TaskType
from prefect_mlops.errors import DataQualityError
from prefect_mlops.expectations import gx
from prefect_mlops.expectations.suites import checkpoint_name, checkpoint_suites, suite_names
from prefect_mlops.features import infer_schema
from prefect_mlops.settings import Settings

# Dtype names for typed columns; the Python names ("int", "float", "str") check the values of
# object columns one by one, which GX 1.24 does for object dtype instead of comparing the dtype.
INT_TYPES = [
    "int",
    *("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"),
    *("Int8Dtype", "Int16Dtype", "Int32Dtype", "Int64Dtype"),
    *("UInt8Dtype", "UInt16Dtype", "UInt32Dtype", "UInt64Dtype"),
]
NUMERIC_TYPES = [
    *INT_TYPES,
    "float",
    "float16",
    "float32",
    "float64",
    "Float32Dtype",
    "Float64Dtype",
]
TEXT_TYPES = ["str", "object", "StringDtype", "CategoricalDtype"]
BOOL_TYPES = ["bool", "BooleanDtype"]

# How far a profiled suite trusts its reference data. Ranges come from the whole reference, so
# seasonal subsets pass; a margin on each side tolerates values a little beyond what was seen.
RANGE_MARGIN = 0.1
# Models one-hot encode with handle_unknown="ignore": a few unseen categories are tolerable.
VALUE_SET_MOSTLY = 0.99
# A category list longer than this is an identifier, not a category: its value set is not pinned.
MAX_VALUE_SET = 1000
# Nullable columns may carry up to twice the reference null fraction plus two points.
NULL_FRACTION_FACTOR = 2.0
NULL_FRACTION_SLACK = 0.02
# A training batch under a tenth of the reference is truncated; over 100x, something duplicated.
ROW_COUNT_MIN_FRACTION = 0.1
ROW_COUNT_MAX_FACTOR = 100


def profile_expectations(
    frame: pd.DataFrame, config: PipelineConfig
) -> dict[str, list[Expectation]]:
    """A starting suite per name, profiled from reference data, for a person to review.

    Features: each column exists, has a type of its kind, is not null (allowing for the nulls
    seen), numeric values lie in the observed range widened by `RANGE_MARGIN` of the span on
    each side, categories come from the observed set (`mostly=VALUE_SET_MOSTLY`). The time
    column of a time split must exist and be filled. Training: the target exists, is never null
    and is numeric (regression) or a known class (classification); the table has the reference
    columns (exactly, when features are inferred, since a new column would silently become a
    feature) and between `ROW_COUNT_MIN_FRACTION` and `ROW_COUNT_MAX_FACTOR` times its rows.
    """
    if config.target not in frame.columns:
        raise DataQualityError(
            f"reference data for suite {config.validation.suite!r} needs the target column "
            f"{config.target!r}; columns are {list(frame.columns)}"
        )
    schema = infer_schema(frame, config)
    features: list[Expectation] = []
    for column in schema.numeric:
        features += _column_basics(frame[column], NUMERIC_TYPES)
        features += _numeric_range(frame[column])
    for column in schema.categorical:
        features += _column_basics(frame[column], _category_types(frame[column]))
        features += _value_set(frame[column])
    for column in schema.datetime:
        features += _column_basics(frame[column], None)
    time_column = config.split.time_column if config.split.strategy == "time" else None
    if time_column and time_column not in schema.features:  # the split needs every timestamp
        features += [
            gxe.ExpectColumnToExist(column=time_column),
            gxe.ExpectColumnValuesToNotBeNull(column=time_column),
        ]

    target = frame[config.target]
    training: list[Expectation] = [
        gxe.ExpectColumnToExist(column=config.target),
        gxe.ExpectColumnValuesToNotBeNull(column=config.target),
    ]
    if config.task == TaskType.regression:
        training.append(
            gxe.ExpectColumnValuesToBeInTypeList(column=config.target, type_list=NUMERIC_TYPES)
        )
    else:
        training.append(
            gxe.ExpectColumnValuesToBeInSet(
                column=config.target, value_set=_observed_values(target)
            )
        )
    required = [*schema.features, config.target, *([time_column] if time_column else [])]
    training += [
        gxe.ExpectTableColumnsToMatchSet(
            column_set=[str(c) for c in frame.columns] if config.features is None else required,
            exact_match=config.features is None,
        ),
        gxe.ExpectTableRowCountToBeBetween(
            min_value=max(1, math.floor(len(frame) * ROW_COUNT_MIN_FRACTION)),
            max_value=len(frame) * ROW_COUNT_MAX_FACTOR,
        ),
    ]
    features_suite, training_suite = suite_names(config)
    return {features_suite: features, training_suite: training}


def _column_basics(values: pd.Series, types: list[str] | None) -> list[Expectation]:
    column = str(values.name)
    found: list[Expectation] = [gxe.ExpectColumnToExist(column=column)]
    if types is not None:
        found.append(gxe.ExpectColumnValuesToBeInTypeList(column=column, type_list=types))
    null_fraction = float(values.isna().mean())
    if null_fraction == 0.0:
        found.append(gxe.ExpectColumnValuesToNotBeNull(column=column))
    else:
        tolerated = null_fraction * NULL_FRACTION_FACTOR + NULL_FRACTION_SLACK
        mostly = math.floor((1.0 - tolerated) * 1000) / 1000
        if mostly > 0:
            found.append(gxe.ExpectColumnValuesToNotBeNull(column=column, mostly=mostly))
    return found


def _category_types(values: pd.Series) -> list[str]:
    if pd.api.types.is_bool_dtype(values):
        return BOOL_TYPES
    if pd.api.types.is_integer_dtype(values):
        return INT_TYPES
    if pd.api.types.is_numeric_dtype(values):
        return NUMERIC_TYPES
    return TEXT_TYPES


def _numeric_range(values: pd.Series) -> list[Expectation]:
    observed = values.dropna()
    if observed.empty:
        return []
    low, high = float(observed.min()), float(observed.max())
    margin = RANGE_MARGIN * (high - low) if high > low else max(abs(low) * RANGE_MARGIN, 1.0)
    # Round outwards at a precision finer than the margin: readable bounds that still hold.
    scale = 10.0 ** max(0, 1 - math.floor(math.log10(margin)))
    min_value = math.floor((low - margin) * scale) / scale
    max_value = math.ceil((high + margin) * scale) / scale
    if pd.api.types.is_integer_dtype(values):
        min_value, max_value = math.floor(min_value), math.ceil(max_value)
    return [
        gxe.ExpectColumnValuesToBeBetween(
            column=str(values.name), min_value=min_value, max_value=max_value
        )
    ]


def _value_set(values: pd.Series) -> list[Expectation]:
    observed = _observed_values(values)
    if len(observed) > MAX_VALUE_SET:
        return []
    return [
        gxe.ExpectColumnValuesToBeInSet(
            column=str(values.name), value_set=observed, mostly=VALUE_SET_MOSTLY
        )
    ]


def _observed_values(values: pd.Series) -> list[Any]:
    """Distinct non-null values as plain Python scalars (JSON-friendly), in a stable order."""
    return sorted(pd.unique(values.dropna()).tolist(), key=lambda v: (str(type(v)), v))


def init_suites(config: PipelineConfig, settings: Settings, reference: pd.DataFrame) -> list[str]:
    """(Re)create the config's suites, validation definitions and checkpoints from reference data.

    Returns what it wrote, e.g. "expectation suite bikeshare.features", "checkpoint
    bikeshare.scoring". Idempotent: existing objects are updated in place (their ids and the
    ids of unchanged expectations are kept), so re-running on the same data rewrites identical
    files.
    """
    context = gx.init_context(settings)
    suites = [
        gx.save_suite(context, name, expectations)
        for name, expectations in profile_expectations(reference, config).items()
    ]
    definitions = {s.name: gx.save_validation_definition(context, s) for s in suites}
    created = [f"expectation suite {name}" for name in definitions]
    created += [f"validation definition {name}" for name in definitions]
    for purpose, members in checkpoint_suites(config).items():
        checkpoint = gx.save_checkpoint(
            context, checkpoint_name(config, purpose), [definitions[m] for m in members]
        )
        created.append(f"checkpoint {checkpoint.name}")
    return created
