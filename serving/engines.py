"""Prediction engines: the fitted scikit-learn pipeline, or its ONNX compilation when equal.

The ONNX engine is built from a copy of the pipeline. What skl2onnx cannot convert (the
project's own transformers) or ONNX Runtime runs only in float32 (imputers) is done in Python on
the request's columns, as `serving.onnx_plan` lays out; everything else runs in ONNX Runtime in
double precision. Tree ensembles (HistGradientBoosting, RandomForest, ExtraTrees) are written by
`serving.onnx_trees` as double-precision `TreeEnsemble` graphs appended to the converted
preprocessing. The engine is only used when it reproduces the pipeline's predictions on the
model's input example.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline

from serving.onnx_plan import CompileError, InputPlan, plan_inputs
from serving.onnx_trees import OPSETS, TreeConversionError, is_tree_model, tree_ensemble_graph
from serving.schema import Columns, InputSchema

logger = logging.getLogger(__name__)

# Double precision end to end: linear models and trees agree with scikit-learn to ~1e-12.
PARITY_RTOL = 1e-6
PARITY_ATOL = 1e-8

_PANDAS_DTYPES = {"double": "float64", "float": "float32", "long": "int64", "integer": "int32"}
# Integer columns with a null: pandas' nullable integers, so the other values stay integers (as
# floats, an integer-coded category 2 would read "2.0" and miss the category "2" it was fit on).
_NULLABLE_INTS = {"long": "Int64", "integer": "Int32"}


@dataclass(frozen=True)
class EngineOutput:
    """Predictions of one batch, and class probabilities for classifiers."""

    predictions: np.ndarray
    probabilities: np.ndarray | None = None


class Engine(Protocol):
    """Anything that turns validated columns into predictions."""

    name: str

    def predict(self, columns: Columns) -> EngineOutput: ...


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


def to_frame(columns: Columns, schema: InputSchema) -> pd.DataFrame:
    """A DataFrame with the dtypes the model was trained on (nulls as NaN, NA, NaT or None)."""
    data: dict[str, Any] = {}
    for spec in schema.columns:
        values = columns[spec.name]
        dtype = _PANDAS_DTYPES.get(spec.type)
        if spec.type in _NULLABLE_INTS and None in values:
            dtype = _NULLABLE_INTS[spec.type]
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
    inputs = plan_inputs(plan[0], schema)
    classifier = _is_classifier(pipeline)
    graph = _convert(plan, inputs.initial_types(schema), classifier)
    engine = OnnxEngine(_session(graph), inputs, classifier)
    check_parity(engine, SklearnEngine(pipeline, schema), example, schema)
    return engine


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
    """Raise CompileError unless `candidate` predicts like `reference` on the example rows, and
    on the same rows with nulls in the columns the schema accepts them for."""
    columns = with_null_rows(frame_to_columns(example, schema), schema)
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
        nulls = [c.name for c in schema.columns if not c.required]
        raise CompileError(
            f"ONNX predictions differ from scikit-learn on {len(example)} example rows"
            + (f" or on them with nulls in {nulls}" if nulls else "")
        )


def with_null_rows(columns: Columns, schema: InputSchema) -> Columns:
    """The rows, then copies with nulls where the schema accepts them: every nullable column
    missing at once, then each alternately missing (so imputed and present values mix)."""
    nullable = [c.name for c in schema.columns if not c.required]
    if not nullable:
        return columns
    rows = len(next(iter(columns.values()), []))
    out = {name: list(values) for name, values in columns.items()}
    for name in schema.names:
        optional = name in nullable
        position = nullable.index(name) if optional else 0
        out[name] += [None] * rows if optional else columns[name]
        out[name] += [
            None if optional and (i + position) % 2 == 0 else value
            for i, value in enumerate(columns[name])
        ]
    return out


def frame_to_columns(frame: pd.DataFrame, schema: InputSchema) -> Columns:
    """Columns of a DataFrame in the form requests take (NaN as None)."""
    return {
        name: [None if _is_null(v) else v for v in frame[name].tolist()] for name in schema.names
    }


def _is_classifier(pipeline: Any) -> bool:
    return hasattr(pipeline, "predict_proba") and hasattr(pipeline, "classes_")


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT
