"""Prediction engines: the fitted scikit-learn pipeline, or its ONNX compilation when equal.

The ONNX engine is built from a copy of the pipeline. The project's own transformers that
skl2onnx cannot convert (`tasks.features._as_text`, `tasks.features.datetime_parts`, see
`serving.datetimes`) and the imputers right after them or on numbers (ONNX Runtime's `Imputer`
is float32-only) are applied in Python on the request's columns; everything else runs in ONNX
Runtime in double precision. Tree ensembles (HistGradientBoosting, RandomForest, ExtraTrees)
are written by `serving.onnx_trees` as double-precision `TreeEnsemble` graphs appended to the
converted preprocessing. The engine is only used when it reproduces the pipeline's predictions
on the model's input example.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from serving.datetimes import UnsupportedPartError, check_parts, datetime_part_matrix
from serving.onnx_trees import OPSETS, TreeConversionError, is_tree_model, tree_ensemble_graph
from serving.schema import Columns, InputSchema

logger = logging.getLogger(__name__)

TEXT_FUNCTIONS = frozenset({"tasks.features._as_text"})
DATETIME_FUNCTIONS = frozenset({"tasks.features.datetime_parts"})
# Nulls of text columns reach ONNX as this marker, which the (re-targeted) imputer replaces.
NULL_TEXT = "\x00null"
# Double precision end to end: linear models and trees agree with scikit-learn to ~1e-12.
PARITY_RTOL = 1e-6
PARITY_ATOL = 1e-8

_PANDAS_DTYPES = {"double": "float64", "float": "float32", "long": "int64", "integer": "int32"}


@dataclass(frozen=True)
class EngineOutput:
    """Predictions of one batch, and class probabilities for classifiers."""

    predictions: np.ndarray
    probabilities: np.ndarray | None = None


class Engine(Protocol):
    """Anything that turns validated columns into predictions."""

    name: str

    def predict(self, columns: Columns) -> EngineOutput: ...


class CompileError(Exception):
    """The pipeline cannot be served by ONNX Runtime; the message says why."""


class SklearnEngine:
    """The fitted pipeline itself, fed a DataFrame typed like the signature."""

    name = "sklearn"

    def __init__(self, pipeline: Pipeline, schema: InputSchema) -> None:
        self._pipeline = pipeline
        self._schema = schema
        self._proba = _is_classifier(pipeline)

    def predict(self, columns: Columns) -> EngineOutput:
        frame = to_frame(columns, self._schema)
        predictions = np.asarray(self._pipeline.predict(frame))
        probabilities = self._pipeline.predict_proba(frame) if self._proba else None
        return EngineOutput(predictions, probabilities)


@dataclass(frozen=True)
class InputPlan:
    """What the engine does in Python to each request column before ONNX Runtime sees it."""

    numeric: list[str]
    numeric_fill: dict[str, float]
    text: list[str]
    already_text: frozenset[str]
    dates: list[str]
    date_parts: tuple[str, ...] = ()
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
            feed[name] = _as_text(columns[name], name in self.already_text)
        for name in self.dates:
            parts = datetime_part_matrix(columns[name], self.date_parts)
            fill = self.date_fill.get(name)
            if fill is not None:
                parts = np.where(np.isnan(parts), fill, parts)
            for index, part in enumerate(self.date_parts):
                feed[date_input(name, part)] = parts[:, index : index + 1].copy()
        return feed


class OnnxEngine:
    """The pipeline compiled to ONNX and run by ONNX Runtime (one thread per call)."""

    name = "onnx"

    def __init__(self, session: Any, plan: InputPlan, classifier: bool) -> None:
        self._session = session
        self._plan = plan
        self._classifier = classifier
        self._outputs = [o.name for o in session.get_outputs()]
        # The binding behind InferenceSession.run: the wrapper re-validates input names on every
        # call (~45 us of a ~80 us single-row call); the feed is built from the graph's inputs.
        self._run = getattr(session, "_sess", session).run

    def predict(self, columns: Columns) -> EngineOutput:
        outputs = self._run(self._outputs, self._plan.feed(columns), None)
        if self._classifier:
            return EngineOutput(np.asarray(outputs[0]).ravel(), np.asarray(outputs[1]))
        return EngineOutput(np.asarray(outputs[0]).ravel())


def date_input(column: str, part: str) -> str:
    """Name of the ONNX input carrying one part of a datetime column."""
    return f"{column}__{part}"


def _as_text(values: list[Any], already_text: bool) -> np.ndarray:
    """A text column as ONNX takes it: `str` of each value (as pandas does), nulls marked."""
    if None in values:
        text = [NULL_TEXT if v is None else str(v) for v in values]
    else:
        text = values if already_text else list(map(str, values))
    return np.array(text, dtype=object).reshape(-1, 1)


def to_frame(columns: Columns, schema: InputSchema) -> pd.DataFrame:
    """A DataFrame with the dtypes the model was trained on (nulls as NaN/None)."""
    data: dict[str, Any] = {}
    for spec in schema.columns:
        values = columns[spec.name]
        dtype = _PANDAS_DTYPES.get(spec.type)
        if dtype is not None and spec.type in ("long", "integer") and None in values:
            dtype = "float64"
        if spec.type == "datetime":
            data[spec.name] = pd.to_datetime(pd.Series(values, dtype=object))
        else:
            data[spec.name] = pd.Series(values, dtype=dtype)
    return pd.DataFrame(data)


def compile_onnx(pipeline: Pipeline, schema: InputSchema, example: pd.DataFrame) -> OnnxEngine:
    """Convert the pipeline to ONNX and prove it predicts like scikit-learn on `example`."""
    if not isinstance(pipeline, Pipeline) or not isinstance(pipeline[0], ColumnTransformer):
        raise CompileError("only Pipeline(ColumnTransformer, estimator) models are compiled")
    plan = copy.deepcopy(pipeline)
    inputs = _rewrite_branches(plan[0], schema)
    classifier = _is_classifier(pipeline)
    graph = _convert(plan, _initial_types(inputs, schema), classifier)
    engine = OnnxEngine(_session(graph), inputs, classifier)
    check_parity(engine, SklearnEngine(pipeline, schema), example, schema)
    return engine


def _initial_types(plan: InputPlan, schema: InputSchema) -> list[tuple[str, Any]]:
    """One ONNX input per column (per part of a datetime column), in the signature's order."""
    from skl2onnx.common.data_types import DoubleTensorType, StringTensorType

    types: list[tuple[str, Any]] = []
    for name in schema.names:
        if name in plan.text:
            types.append((name, StringTensorType([None, 1])))
        elif name in plan.numeric:
            types.append((name, DoubleTensorType([None, 1])))
        elif name in plan.dates:
            types += [(date_input(name, p), DoubleTensorType([None, 1])) for p in plan.date_parts]
    return types


def _convert(plan: Pipeline, types: list[tuple[str, Any]], classifier: bool) -> Any:
    """skl2onnx for the pipeline; tree ensembles appended as double `TreeEnsemble` graphs."""
    from onnx.compose import merge_models
    from skl2onnx import convert_sklearn

    estimator = plan.steps[-1][1]
    try:
        if not is_tree_model(estimator):
            options = {id(estimator): {"zipmap": False}} if classifier else None
            return convert_sklearn(plan, initial_types=types, options=options)
        head = convert_sklearn(plan[0], initial_types=types, target_opset=OPSETS)
        tail = tree_ensemble_graph(estimator, int(estimator.n_features_in_))
        head.ir_version = tail.ir_version
        _raise_opsets(head, OPSETS)  # skl2onnx pins the lowest it needs; the ops hold in 5
        joined = [(head.graph.output[0].name, tail.graph.input[0].name)]
        return merge_models(head, tail, io_map=joined, prefix2="estimator_")
    except TreeConversionError as exc:
        raise CompileError(f"the estimator cannot be written as ONNX: {exc}") from exc
    except Exception as exc:  # skl2onnx raises many types; each means "not convertible"
        raise CompileError(f"skl2onnx cannot convert the pipeline: {exc}") from exc


def _raise_opsets(model: Any, opsets: dict[str, int]) -> None:
    for entry in model.opset_import:
        entry.version = max(entry.version, opsets.get(entry.domain, entry.version))


def _session(graph: Any) -> Any:
    """An ONNX Runtime session on one thread (the service scales with processes)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(
            graph.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime lacks a kernel for a type: not servable
        raise CompileError(f"ONNX Runtime cannot run the converted graph: {exc}") from exc


def check_parity(
    candidate: Engine, reference: Engine, example: pd.DataFrame, schema: InputSchema
) -> None:
    """Raise CompileError unless `candidate` predicts like `reference` on the example rows."""
    columns = frame_to_columns(example, schema)
    got, want = candidate.predict(columns), reference.predict(columns)
    if want.predictions.dtype.kind in "fc":
        same = np.allclose(got.predictions, want.predictions, rtol=PARITY_RTOL, atol=PARITY_ATOL)
    else:
        same = np.array_equal(got.predictions.astype(str), want.predictions.astype(str))
    if same and want.probabilities is not None:
        same = got.probabilities is not None and np.allclose(
            got.probabilities, want.probabilities, rtol=PARITY_RTOL, atol=PARITY_ATOL
        )
    if not same:
        raise CompileError(f"ONNX predictions differ from scikit-learn on {len(example)} rows")


def frame_to_columns(frame: pd.DataFrame, schema: InputSchema) -> Columns:
    """Columns of a DataFrame in the form requests take (NaN as None)."""
    return {
        name: [None if _is_null(v) else v for v in frame[name].tolist()] for name in schema.names
    }


def _rewrite_branches(transformer: ColumnTransformer, schema: InputSchema) -> InputPlan:
    """Strip the steps run in Python from a copied ColumnTransformer; return what they do."""
    text: set[str] = set()
    numeric_fill: dict[str, float] = {}
    dates: set[str] = set()
    date_fill: dict[str, np.ndarray] = {}
    parts: tuple[str, ...] = ()
    for index, (name, branch, cols) in enumerate(transformer.transformers_):
        if branch in ("drop", "passthrough"):
            continue
        if not isinstance(branch, Pipeline) or not all(isinstance(c, str) for c in cols):
            raise CompileError(f"branch {name!r} is not a Pipeline over named columns")
        first = branch.steps[0][1]
        if isinstance(first, FunctionTransformer) and _qualname(first.func) in TEXT_FUNCTIONS:
            branch.steps.pop(0)
            text.update(cols)
            imputer = branch.steps[0][1] if branch.steps else None
            if isinstance(imputer, SimpleImputer):
                imputer.missing_values = NULL_TEXT
        elif isinstance(first, FunctionTransformer) and _qualname(first.func) in DATETIME_FUNCTIONS:
            parts = _datetime_parts_of(first)
            branch.steps.pop(0)
            dates.update(cols)
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
            if isinstance(step, FunctionTransformer) and step.func is not None:
                raise CompileError(f"step {name}.{step_name} runs {_qualname(step.func)}")
    used = _used_columns(transformer)
    return InputPlan(
        numeric=[c for c in schema.names if c in used and c not in text and c not in dates],
        numeric_fill=numeric_fill,
        text=[c for c in schema.names if c in text],
        already_text=frozenset(c.name for c in schema.columns if c.type == "string"),
        dates=[c for c in schema.names if c in dates],
        date_parts=parts,
        date_fill=date_fill,
    )


def _datetime_parts_of(step: FunctionTransformer) -> tuple[str, ...]:
    """The parts `tasks.features.datetime_parts` computes, if the service computes them too."""
    from tasks.features import DATETIME_PARTS

    try:
        return check_parts(DATETIME_PARTS)
    except UnsupportedPartError as exc:
        raise CompileError(f"{_qualname(step.func)}: {exc}") from exc


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


def _qualname(func: Any) -> str:
    return f"{getattr(func, '__module__', '')}.{getattr(func, '__qualname__', repr(func))}"


def _is_classifier(pipeline: Any) -> bool:
    return hasattr(pipeline, "predict_proba") and hasattr(pipeline, "classes_")


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT
