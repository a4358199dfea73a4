"""Load one registered model version: pipeline, signature, input example and engine."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient

from prefect_mlops.packaging import load_packaged
from prefect_mlops.registry import registry_client, require_version
from serving.engines import (
    CompileError,
    Engine,
    SklearnEngine,
    compile_onnx,
    frame_to_columns,
)
from serving.schema import InputSchema
from serving.settings import ServeSettings

logger = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """Everything one request needs, swapped as a whole so no response mixes two versions.

    Treated as immutable once served; `rows_scored` is its counter, bound when it is swapped in.
    """

    name: str
    version: str
    alias: str
    schema: InputSchema
    engine: Engine
    signature: dict[str, Any]
    classes: list[Any] | None = None
    run_id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    engine_note: str = ""
    loaded_at: float = field(default_factory=time.time)
    rows_scored: Any = None
    # One row of the logged input example, as JSON values: the request example of /docs.
    example: list[dict[str, Any]] = field(default_factory=list)

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def serving_client(settings: ServeSettings) -> MlflowClient:
    """A client for the configured tracking and registry stores (never a global one)."""
    return registry_client(settings.tracking_uri, settings.registry_uri)


def resolve_alias(client: MlflowClient, settings: ServeSettings) -> ModelVersion:
    """The version the alias points at right now (with its run id and tags)."""
    return require_version(client, settings.model_name, settings.alias)


def load_version(
    client: MlflowClient,
    settings: ServeSettings,
    version: str,
    details: ModelVersion | None = None,
) -> LoadedModel:
    """Load one version (skops or ONNX, never pickle); ONNX engine only when it matches sklearn.

    `details`: the version as the alias look-up returned it (saves asking the registry again).
    """
    if details is None or str(details.version) != str(version):
        details = client.get_model_version(settings.model_name, version)
    packaged = load_packaged(
        f"models:/{settings.model_name}/{version}", settings.tracking_uri, settings.registry_uri
    )
    pipeline, meta, example = packaged.model, packaged.metadata, packaged.input_example
    schema = InputSchema.from_signature(meta.signature, max_rows=settings.max_rows)
    engine, note = choose_engine(pipeline, schema, example, settings.use_onnx)
    warm_up(engine, schema, example)
    classes = getattr(pipeline, "classes_", None) if hasattr(pipeline, "predict_proba") else None
    logger.info(
        "loaded %s v%s with the %s engine %s", settings.model_name, version, engine.name, note
    )
    return LoadedModel(
        name=settings.model_name,
        version=str(version),
        alias=settings.alias,
        schema=schema,
        engine=engine,
        signature=meta.signature.to_dict() if meta.signature else {},
        classes=None if classes is None else [_plain(c) for c in classes],
        run_id=details.run_id,
        tags=dict(details.tags),
        engine_note=note,
        example=example_records(example, schema),
    )


def example_records(example: Any, schema: InputSchema) -> list[dict[str, Any]]:
    """The first complete row of the input example (else its first row) as JSON records."""
    if not isinstance(example, pd.DataFrame) or example.empty:
        return []
    frame = example[schema.names]
    complete = frame.dropna()
    first = (complete if not complete.empty else frame).head(1)
    records: list[dict[str, Any]] = json.loads(
        first.to_json(orient="records", date_format="iso", date_unit="s")
    )
    return records


def choose_engine(
    pipeline: Any, schema: InputSchema, example: Any, use_onnx: bool
) -> tuple[Engine, str]:
    """ONNX when it compiles and reproduces scikit-learn on the example, else scikit-learn; why."""
    fallback = SklearnEngine(pipeline, schema)
    if not use_onnx:
        return fallback, "ONNX disabled by configuration"
    if not isinstance(example, pd.DataFrame) or example.empty:
        return fallback, "no input example to check ONNX parity on"
    try:
        return compile_onnx(pipeline, schema, example[schema.names]), "parity checked"
    except CompileError as exc:
        logger.warning("serving with scikit-learn: %s", exc)
        return fallback, str(exc)


def warm_up(engine: Engine, schema: InputSchema, example: Any) -> None:
    """Answer the input example once on the loading thread, so the first request after a swap
    does not pay for lazy set-up (scikit-learn's first call, ONNX Runtime's first run)."""
    if isinstance(example, pd.DataFrame) and not example.empty:
        engine.predict(frame_to_columns(example[schema.names], schema))


def _plain(value: Any) -> Any:
    """numpy scalars as plain Python values, for JSON."""
    return value.item() if hasattr(value, "item") else value
