"""Score: batch predictions with a registered model, chunk by chunk, memory bounded."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel, Field, model_validator

from prefect_mlops.config import PipelineConfig, SourceConfig
from prefect_mlops.errors import DataValidationError, IngestError
from prefect_mlops.prediction_log import PredictionRecord, open_store
from prefect_mlops.registry import require_version
from prefect_mlops.results import ModelVersionRef, ValidationSummary
from prefect_mlops.settings import Settings
from prefect_mlops.tracking import mlflow_client, use_tracking
from tasks.policies import IO_RETRIES
from tasks.validate import validate_frame


class DestinationConfig(BaseModel):
    """Where predictions go: a Parquet or CSV file, or a SQL table (appended to)."""

    kind: Literal["parquet", "csv", "sql"]
    path: str | None = None
    url: str | None = Field(default=None, description="SQLAlchemy URL, for kind sql")
    table: str | None = None

    @model_validator(mode="after")
    def _check_location(self) -> DestinationConfig:
        if self.kind in ("parquet", "csv") and not self.path:
            raise ValueError(f"destination.path is required for a {self.kind} destination")
        if self.kind == "sql" and not (self.url and self.table):
            raise ValueError("destination.url and destination.table are required for sql")
        return self

    def describe(self) -> str:
        """The location, safe to log (credentials stripped)."""
        if self.kind != "sql":
            return str(self.path)
        url = sa.engine.make_url(str(self.url)).render_as_string(hide_password=True)
        return f"{url}#{self.table}"


class ScoringSummary(BaseModel):
    """What a scoring run produced."""

    model_name: str
    model_version: str
    rows: int
    chunks: int
    seconds: float
    output: str
    logged: bool


def same_sqlite_file(source: SourceConfig, destination: DestinationConfig) -> bool:
    """Whether both ends are one SQLite database file (read and written at once: locked)."""
    if source.kind != "sql" or destination.kind != "sql":
        return False
    ends = [sa.engine.make_url(str(u)) for u in (source.url, destination.url)]
    if not all(u.get_backend_name() == "sqlite" and u.database for u in ends):
        return False
    return Path(str(ends[0].database)).resolve() == Path(str(ends[1].database)).resolve()


def iter_chunks(source: SourceConfig, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The source, `chunk_rows` rows at a time (never the whole of it in memory)."""
    if source.kind == "csv":
        yield from pd.read_csv(str(source.path), chunksize=chunk_rows)
    elif source.kind == "parquet":
        for batch in pq.ParquetFile(str(source.path)).iter_batches(batch_size=chunk_rows):
            yield batch.to_pandas()
    else:
        engine = sa.create_engine(str(source.url))
        query = source.query or sa.select(sa.literal_column("*")).select_from(
            sa.table(str(source.table))
        )
        try:
            with engine.connect() as connection:
                yield from pd.read_sql(query, connection, chunksize=chunk_rows)
        finally:
            engine.dispose()


@contextmanager
def open_writer(destination: DestinationConfig) -> Iterator[Any]:
    """A `write(frame)` callable appending chunks; files appear, rows commit, only when complete."""
    if destination.kind == "sql":
        engine = sa.create_engine(str(destination.url))
        try:
            with engine.begin() as connection:  # one transaction: all chunks or none
                yield lambda frame: frame.to_sql(
                    str(destination.table), connection, if_exists="append", index=False
                )
        finally:
            engine.dispose()
        return
    final = Path(str(destination.path))
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = final.with_name(f".{final.name}.partial")
    state: dict[str, Any] = {"writer": None}

    def write(frame: pd.DataFrame) -> None:
        if destination.kind == "csv":
            frame.to_csv(partial, mode="a", header=state["writer"] is None, index=False)
            state["writer"] = True
            return
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if state["writer"] is None:
            state["writer"] = pq.ParquetWriter(partial, table.schema)
        state["writer"].write_table(table.cast(state["writer"].schema))

    try:
        yield write
        if isinstance(state["writer"], pq.ParquetWriter):
            state["writer"].close()
        partial.replace(final)
    finally:
        partial.unlink(missing_ok=True)


@task(**IO_RETRIES)
def resolve_model(name: str, alias: str, settings: Settings) -> ModelVersionRef:
    """The registered version an alias points at now (fixed for the whole run)."""
    version = require_version(mlflow_client(settings), name, alias)
    return ModelVersionRef(name=name, version=str(version.version), aliases=[alias])


@task
def validate_source(
    source: SourceConfig, config: PipelineConfig, chunk_rows: int, batch_id: str, settings: Settings
) -> ValidationSummary:
    """Run the scoring checkpoint on every chunk before anything is written; one summary."""
    summaries = [
        validate_frame(chunk, config, settings, purpose="scoring", batch_id=f"{batch_id}-{i}")
        for i, chunk in enumerate(iter_chunks(source, chunk_rows))
    ]
    if not summaries:
        raise IngestError(f"scoring source {source.describe()} has no rows")
    failed = [s for s in summaries if not s.success]
    first = failed[0] if failed else summaries[0]
    return first.model_copy(
        update={"evaluated": sum(s.evaluated for s in summaries), "success": not failed}
    )


@task
def enforce_scoring_gate(summary: ValidationSummary, policy: Literal["fail", "warn"]) -> None:
    """A failed validation stops scoring (policy fail) or is logged (warn)."""
    if summary.success:
        return
    message = "scoring data validation failed\n" + summary.describe()
    if policy == "fail":
        raise DataValidationError(message)
    get_run_logger().warning("%s\n(policy warn: scoring continues)", message)


@task
def score_source(
    model: ModelVersionRef,
    source: SourceConfig,
    destination: DestinationConfig,
    chunk_rows: int,
    batch_id: str,
    log_location: tuple[str | None, Path] | None,
    settings: Settings,
) -> ScoringSummary:
    """Predict every chunk, write it with the model version, and append it to the log."""
    use_tracking(settings)
    uri = f"models:/{model.name}/{model.version}"
    pipeline = mlflow.sklearn.load_model(uri)
    features = mlflow.models.get_model_info(uri).signature.inputs.input_names()
    store = open_store(*log_location) if log_location else None
    started, rows, chunks = time.perf_counter(), 0, 0
    with open_writer(destination) as write:
        for index, chunk in enumerate(iter_chunks(source, chunk_rows)):
            predictions = np.asarray(pipeline.predict(chunk[features]))
            write(chunk.assign(prediction=predictions, model_version=model.version))
            if store is not None:
                columns = {c: chunk[c].tolist() for c in features}
                record = PredictionRecord(
                    f"{batch_id}-{index}",
                    time.time(),
                    model.name,
                    model.version,
                    columns,
                    predictions,
                    None,
                )
                store.append_predictions([record])
            rows, chunks = rows + len(chunk), chunks + 1
    return ScoringSummary(
        model_name=model.name,
        model_version=model.version,
        rows=rows,
        chunks=chunks,
        seconds=time.perf_counter() - started,
        output=destination.describe(),
        logged=store is not None,
    )


@task
def publish_scoring_summary(summary: ScoringSummary, config: PipelineConfig) -> None:
    """A markdown artifact: rows, duration, model version and where the predictions are."""
    create_markdown_artifact(
        key=f"scoring-{config.name}".lower().replace("_", "-"),
        markdown="\n".join(
            [
                f"# Batch scoring of {config.name}",
                "| rows | chunks | seconds | model | version | output |",
                "|---|---|---|---|---|---|",
                f"| {summary.rows} | {summary.chunks} | {summary.seconds:.2f} | "
                f"{summary.model_name} | {summary.model_version} | {summary.output} |",
            ]
        ),
        description=f"Batch scoring with {summary.model_name} v{summary.model_version}",
    )
