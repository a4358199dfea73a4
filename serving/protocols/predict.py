"""This service's own protocol: `POST /predict` answers and `POST /feedback` labels."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from serving.errors import InputError
from serving.predictor import Prediction


class PredictResponse(BaseModel):
    """Answer of `POST /predict` (documented; built directly as JSON for speed)."""

    request_id: str
    model_name: str
    model_version: str = Field(description="the version that answered (a mixed batch: both)")
    model_arm: str = Field(
        default="champion",
        description="the rollout arm that answered: champion, or challenger (canary and A/B); "
        "mixed for a batch whose rows' keys put it on both arms",
    )
    model_arms: list[str] | None = Field(
        default=None, description="a mixed batch: the arm of each row"
    )
    model_versions: list[str] | None = Field(
        default=None, description="a mixed batch: the version of each row"
    )
    predictions: list[Any]
    classes: list[Any] | None = None
    probabilities: list[list[float]] | None = None


class FeedbackRequest(BaseModel):
    """A ground-truth label for row `row_index` of request `request_id` (the predictor checks
    that the request was answered here, had that row, and that the label fits the task)."""

    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(pattern=r"^[A-Za-z0-9._:-]{1,64}$")
    label: Any
    row_index: int = Field(default=0, ge=0, lt=2**31)


def predict_response(prediction: Prediction) -> dict[str, Any]:
    """Body of a `/predict` answer."""
    model = prediction.model
    body: dict[str, Any] = {
        "request_id": prediction.request_id,
        "model_name": model.name,
        "model_version": prediction.version_label,
        "model_arm": prediction.arm_label,
        "predictions": prediction.predictions,
    }
    if prediction.row_arms is not None:
        body["model_arms"] = prediction.row_arms
        body["model_versions"] = prediction.row_versions
    if prediction.probabilities is not None:
        body["classes"] = model.classes
        body["probabilities"] = prediction.probabilities
    return body


def parse_feedback(body: bytes) -> FeedbackRequest:
    """Validate a `/feedback` body, naming the first problem's field."""
    try:
        return FeedbackRequest.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise InputError(where, first["msg"]) from None
