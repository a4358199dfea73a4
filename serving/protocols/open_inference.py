"""The Open Inference Protocol v2 (KServe, Triton): one input tensor per signature column."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from serving.errors import InputError
from serving.model import LoadedModel
from serving.predictor import Prediction
from serving.schema import Columns, InputSchema

# Open Inference Protocol datatypes accepted for each MLflow column type.
OIP_ACCEPTS = {
    "double": {"FP64", "FP32", "FP16"},
    "float": {"FP64", "FP32", "FP16"},
    "long": {"INT64", "INT32", "INT16", "INT8", "UINT32", "UINT16", "UINT8"},
    "integer": {"INT64", "INT32", "INT16", "INT8", "UINT32", "UINT16", "UINT8"},
    "boolean": {"BOOL"},
    "string": {"BYTES"},
    "datetime": {"BYTES"},
}


class InferInput(BaseModel):
    """One named tensor of an inference request: here, one column."""

    model_config = ConfigDict(extra="forbid")

    name: str
    shape: list[int]
    datatype: str
    data: list[Any]
    parameters: dict[str, Any] | None = None


class InferRequest(BaseModel):
    """`POST /v2/models/{name}/infer` body."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    inputs: list[InferInput] = Field(min_length=1)
    outputs: list[dict[str, Any]] | None = None
    parameters: dict[str, Any] | None = None


def columns_from_infer(request: InferRequest, schema: InputSchema) -> Columns:
    """Validated columns of an Open Inference Protocol request (one input tensor per column)."""
    schema.check_names([tensor.name for tensor in request.inputs], "inputs")  # count, dupes
    columns: dict[str, Any] = {}
    for index, tensor in enumerate(request.inputs):
        where = f"inputs[{index}]"
        if tensor.name in schema.columns_by_name:
            accepted = OIP_ACCEPTS[schema.column(tensor.name).type]
            if tensor.datatype not in accepted:
                raise InputError(
                    f"{where}.datatype",
                    f"{tensor.name!r} takes {sorted(accepted)}, not {tensor.datatype!r}",
                )
        rows = tensor.shape[0] if tensor.shape else -1
        if tensor.shape not in ([rows], [rows, 1]) or rows != len(tensor.data):
            raise InputError(
                f"{where}.shape", f"expected [{len(tensor.data)}] or [{len(tensor.data)}, 1]"
            )
        columns[tensor.name] = tensor.data
    return schema.validate_columns(columns, where="inputs")


def parse_infer_request(body: bytes) -> InferRequest:
    """Validate the envelope of an inference request."""
    try:
        return InferRequest.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = "body" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
        raise InputError(where, first["msg"]) from None


def infer_response(prediction: Prediction, request_id: str | None) -> dict[str, Any]:
    """Body of an Open Inference Protocol answer."""
    values = prediction.predictions
    outputs = [
        {
            "name": "predictions",
            "shape": [len(values)],
            "datatype": _datatype(values),
            "data": values,
        }
    ]
    if prediction.probabilities is not None:
        width = len(prediction.probabilities[0]) if prediction.probabilities else 0
        outputs.append(
            {
                "name": "probabilities",
                "shape": [len(values), width],
                "datatype": "FP64",
                "data": [p for row in prediction.probabilities for p in row],
            }
        )
    return {
        "model_name": prediction.model.name,
        "model_version": prediction.version_label,
        "id": request_id or prediction.request_id,
        "parameters": {"model_arm": prediction.arm_label, **_row_arms(prediction)},
        "outputs": outputs,
    }


def model_metadata_v2(model: LoadedModel) -> dict[str, Any]:
    """`GET /v2/models/{name}`."""
    return {
        "name": model.name,
        "versions": [model.version],
        "platform": f"mlflow-sklearn-{model.engine.name}",
        "inputs": [
            {"name": c.name, "datatype": c.datatype, "shape": [-1]} for c in model.schema.columns
        ],
        "outputs": [{"name": "predictions", "datatype": "FP64", "shape": [-1]}],
    }


def _datatype(values: list[Any]) -> str:
    first = values[0] if values else 0.0
    if isinstance(first, bool):
        return "BOOL"
    if isinstance(first, int):
        return "INT64"
    if isinstance(first, float):
        return "FP64"
    return "BYTES"


def _row_arms(prediction: Prediction) -> dict[str, list[str]]:
    """A batch split between the arms: each row's arm and version."""
    if prediction.row_arms is None or prediction.row_versions is None:
        return {}
    return {"model_arms": list(prediction.row_arms), "model_versions": prediction.row_versions}
