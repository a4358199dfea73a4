"""What the ONNX engine runs in Python before ONNX Runtime: the input plan of a pipeline.

skl2onnx cannot convert the project's own transformers (`prefect_mlops.transformers`), and ONNX
Runtime's `Imputer` is float32-only. So a copy of the pipeline's ColumnTransformer is rewritten:
the first step of each branch that is one of those transformers (`CategoryText`, `DatetimeParts`,
or the `FunctionTransformer`s of the legacy functions that 0.1.0 models hold), the imputer right
after it, and the imputer of numeric branches are removed, and `InputPlan` does their work on
the request's columns. Steps are recognised by type (and legacy functions by identity), never
by qualified name, so moving a module cannot silently change what the service computes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from prefect_mlops.transformers import (
    DATETIME_PARTS,
    CategoryText,
    DatetimeParts,
    legacy_as_text,
    legacy_datetime_parts,
)
from serving.datetimes import UnsupportedPartError, check_parts, datetime_part_matrix
from serving.schema import Columns, InputSchema

# Nulls of text columns reach ONNX as this marker, which the (re-targeted) imputer replaces.
NULL_TEXT = "\x00null"


class CompileError(Exception):
    """The pipeline cannot be served by ONNX Runtime; the message says why."""


@dataclass(frozen=True)
class InputPlan:
    """What the engine does in Python to each request column before ONNX Runtime sees it."""

    numeric: list[str]
    numeric_fill: dict[str, float]
    text: list[str]
    already_text: frozenset[str]
    dates: list[str]
    date_parts: dict[str, tuple[str, ...]] = field(default_factory=dict)
    date_fill: dict[str, np.ndarray] = field(default_factory=dict)

    def feed(self, columns: Columns) -> dict[str, np.ndarray]:
        """The ONNX inputs of one batch: numbers imputed, text marked, dates expanded."""
        feed: dict[str, np.ndarray] = {}
        for name in self.numeric:
            values = np.array(columns[name], dtype=np.float64).reshape(-1, 1)
            fill = self.numeric_fill.get(name)
            if fill is not None:
                missing = np.isnan(values)
                if missing.any():
                    values[missing] = fill
            feed[name] = values
        for name in self.text:
            feed[name] = text_input(columns[name], name in self.already_text)
        for name in self.dates:
            parts = self.date_parts[name]
            matrix = datetime_part_matrix(columns[name], parts)
            fills = self.date_fill.get(name)
            if fills is not None:
                matrix = np.where(np.isnan(matrix), fills, matrix)
            for index, part in enumerate(parts):
                feed[date_input(name, part)] = matrix[:, index : index + 1].copy()
        return feed

    def initial_types(self, schema: InputSchema) -> list[tuple[str, Any]]:
        """One ONNX input per column (per part of a datetime column), in the signature's order."""
        from skl2onnx.common.data_types import DoubleTensorType, StringTensorType

        types: list[tuple[str, Any]] = []
        for name in schema.names:
            if name in self.text:
                types.append((name, StringTensorType([None, 1])))
            elif name in self.numeric:
                types.append((name, DoubleTensorType([None, 1])))
            elif name in self.dates:
                types += [
                    (date_input(name, p), DoubleTensorType([None, 1]))
                    for p in self.date_parts[name]
                ]
        return types


def date_input(column: str, part: str) -> str:
    """Name of the ONNX input carrying one part of a datetime column."""
    return f"{column}__{part}"


def text_input(values: list[Any], already_text: bool) -> np.ndarray:
    """A text column as ONNX takes it: `str` of each value (as pandas does), nulls marked."""
    if None in values:
        text = [NULL_TEXT if v is None else str(v) for v in values]
    else:
        text = values if already_text else list(map(str, values))
    return np.array(text, dtype=object).reshape(-1, 1)


def plan_inputs(transformer: ColumnTransformer, schema: InputSchema) -> InputPlan:
    """Strip the steps run in Python from a copied ColumnTransformer; return what they do."""
    text: set[str] = set()
    numeric_fill: dict[str, float] = {}
    date_parts: dict[str, tuple[str, ...]] = {}
    date_fill: dict[str, np.ndarray] = {}
    for index, (name, branch, cols) in enumerate(transformer.transformers_):
        if branch in ("drop", "passthrough"):
            continue
        if not isinstance(branch, Pipeline) or not all(isinstance(c, str) for c in cols):
            raise CompileError(f"branch {name!r} is not a Pipeline over named columns")
        first = branch.steps[0][1]
        parts = _datetime_parts_of(first, name)
        if _is_category_text(first):
            branch.steps.pop(0)
            text.update(cols)
            imputer = branch.steps[0][1] if branch.steps else None
            if isinstance(imputer, SimpleImputer):
                imputer.missing_values = NULL_TEXT
        elif parts:
            branch.steps.pop(0)
            date_parts.update(dict.fromkeys(cols, parts))
            date_fill.update(_pop_imputer(branch, name, cols, len(parts)))
            # one ONNX input per part: skl2onnx selects ColumnTransformer inputs by name
            new_cols = [date_input(c, p) for c in cols for p in parts]
            transformer.transformers_[index] = (
                name,
                branch if branch.steps else "passthrough",
                new_cols,
            )
        elif isinstance(first, SimpleImputer) and not first.add_indicator and len(branch) > 1:
            branch.steps.pop(0)
            numeric_fill.update(zip(cols, (float(s) for s in first.statistics_), strict=True))
        for step_name, step in branch.steps:
            if isinstance(step, CategoryText | DatetimeParts) or (
                isinstance(step, FunctionTransformer) and step.func is not None
            ):
                raise CompileError(f"step {name}.{step_name} ({step!r}) runs only in Python")
    used = _used_columns(transformer)
    return InputPlan(
        numeric=[c for c in schema.names if c in used and c not in text and c not in date_parts],
        numeric_fill=numeric_fill,
        text=[c for c in schema.names if c in text],
        already_text=frozenset(c.name for c in schema.columns if c.type == "string"),
        dates=[c for c in schema.names if c in date_parts],
        date_parts=date_parts,
        date_fill=date_fill,
    )


def _is_category_text(step: Any) -> bool:
    if isinstance(step, FunctionTransformer):
        return step.func is legacy_as_text
    return isinstance(step, CategoryText)


def _datetime_parts_of(step: Any, branch: str) -> tuple[str, ...]:
    """The parts a datetime step computes (empty for other steps), if the service computes them."""
    if isinstance(step, DatetimeParts):
        parts: tuple[str, ...] = tuple(step.parts)
    elif isinstance(step, FunctionTransformer) and step.func is legacy_datetime_parts:
        parts = DATETIME_PARTS
    else:
        return ()
    try:
        return check_parts(parts)
    except UnsupportedPartError as exc:
        raise CompileError(f"branch {branch!r}: {exc}") from exc


def _pop_imputer(branch: Pipeline, name: str, cols: list[str], width: int) -> dict[str, np.ndarray]:
    """Remove the datetime branch's imputer (run in Python); its fill values per column."""
    imputer = branch.steps[0][1] if branch.steps else None
    if not isinstance(imputer, SimpleImputer):
        return {}
    if imputer.add_indicator:
        raise CompileError(f"branch {name!r} imputes datetime parts with missing indicators")
    branch.steps.pop(0)
    stats = np.asarray(imputer.statistics_, dtype=np.float64)
    return {c: stats[i * width : (i + 1) * width] for i, c in enumerate(cols)}


def _used_columns(transformer: ColumnTransformer) -> set[str]:
    return {
        c
        for _, branch, cols in transformer.transformers_
        if not (isinstance(branch, str) and branch == "drop")
        for c in cols
        if isinstance(c, str)
    }
