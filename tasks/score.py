"""Score: batch predictions with a registered model, chunk by chunk, memory bounded."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture
from pydantic import BaseModel
from sklearn.pipeline import Pipeline

from prefect_mlops.config import PipelineConfig
from prefect_mlops.destinations import Destination
from prefect_mlops.errors import ScoringError
from prefect_mlops.expectations.gate import GatePolicy, check_data_gate
from prefect_mlops.expectations.run import validate_frame
from prefect_mlops.log_safety import log_isolated
from prefect_mlops.names import artifact_key
from prefect_mlops.packaging import load_pipeline
from prefect_mlops.prediction_log import LogStore, PredictionRecord, open_store
from prefect_mlops.registry import require_version
from prefect_mlops.results import ModelVersionRef, ValidationSummary
from prefect_mlops.runtime import cpu_count, openmp_threads
from prefect_mlops.scoring_inputs import (
    model_label,
    predict_rows,
    require_features,
    scoring_chunks,
)
from prefect_mlops.settings import Settings
from prefect_mlops.sources import CsvSource, ParquetSource, Source
from prefect_mlops.tracking import mlflow_client, use_tracking
from tasks.policies import IO_RETRIES
from tasks.progress import Progress
from tasks.runners import current_dask_slots


class ScoringSummary(BaseModel):
    """What a scoring run produced."""

    model_name: str
    model_version: str
    rows: int
    chunks: int
    seconds: float
    output: str
    logged: bool
    dead_lettered: int = 0


@task(**IO_RETRIES, task_run_name="resolve {name}@{alias}")
def resolve_model(name: str, alias: str, settings: Settings) -> ModelVersionRef:
    """The registered version an alias points at now (fixed for the whole run)."""
    version = require_version(mlflow_client(settings), name, alias)
    get_run_logger().info("%s@%s is version %s", name, alias, version.version)
    return ModelVersionRef(name=name, version=str(version.version), aliases=[alias])


@task(task_run_name="validate {config.validation.suite} (scoring)")
def validate_source(
    model: ModelVersionRef,
    source: Source,
    config: PipelineConfig,
    chunk_rows: int,
    batch_id: str,
    settings: Settings,
) -> ValidationSummary:
    """Run the scoring checkpoint on every chunk before anything is written; one summary."""
    label = model_label(model.name, model.version)
    progress = ChunkProgress("scoring-validation", model.name, source, chunk_rows, "validated")
    summaries = []
    for i, chunk in enumerate(scoring_chunks(source, chunk_rows, label)):
        summaries.append(
            validate_frame(chunk, config, settings, purpose="scoring", batch_id=f"{batch_id}-{i}")
        )
        progress.advance(len(chunk))
    failed = [s for s in summaries if not s.success]
    first = failed[0] if failed else summaries[0]
    summary = first.model_copy(
        update={"evaluated": sum(s.evaluated for s in summaries), "success": not failed}
    )
    get_run_logger().info(
        "validation of %s (%s rows in %d chunks): %s",
        source.describe(),
        f"{progress.rows:,}",
        len(summaries),
        f"{len(failed)} chunks failed"
        if failed
        else f"all {summary.evaluated} expectations passed",
    )
    return summary


@task(task_run_name="scoring data gate (policy {policy})")
def enforce_scoring_gate(summary: ValidationSummary, policy: GatePolicy) -> None:
    """A failed validation stops scoring (policy fail) or is logged (warn)."""
    warning = check_data_gate(summary, policy, subject="scoring data")
    if warning is not None:
        get_run_logger().warning(warning)


@task(task_run_name="score with {model.name} v{model.version}")
def score_source(
    model: ModelVersionRef,
    source: Source,
    destination: Destination,
    chunk_rows: int,
    batch_id: str,
    log_location: tuple[str | None, Path] | None,
    settings: Settings,
) -> ScoringSummary:
    """Predict every chunk, write it with the model version, and append it to the log."""
    use_tracking(settings)
    uri = f"models:/{model.name}/{model.version}"
    pipeline = load_pipeline(uri, settings.tracking_uri, settings.registry_uri)
    features = mlflow.models.get_model_info(uri).signature.inputs.input_names()
    store = open_store(*log_location) if log_location else None
    label, where = model_label(model.name, model.version), source.describe()
    started, rows, chunks, dead = time.perf_counter(), 0, 0, 0
    progress = ChunkProgress("scoring-progress", model.name, source, chunk_rows, "scored")
    with destination.open_writer() as write:
        batches = scoring_chunks(source, chunk_rows, label)
        for index, (chunk, predictions) in enumerate(
            predict_chunks(pipeline, batches, features, where, label)
        ):
            inputs = chunk[features]
            write(chunk.assign(prediction=predictions, model_version=model.version))
            if store is not None:
                record = scored_record(model, f"{batch_id}-{index}", inputs, predictions)
                dead += log_scored_chunk(store, record, label)
            rows, chunks = rows + len(chunk), chunks + 1
            progress.advance(len(chunk))
    get_run_logger().info(
        "scored %s rows in %d chunks with %s into %s", f"{rows:,}", chunks, label, where
    )
    if dead:
        get_run_logger().warning(
            "%d scored rows could not be logged and were dead-lettered beside the log", dead
        )
    return ScoringSummary(
        model_name=model.name,
        model_version=model.version,
        rows=rows,
        chunks=chunks,
        seconds=time.perf_counter() - started,
        output=destination.describe(),
        logged=store is not None,
        dead_lettered=dead,
    )


def predict_chunks(
    pipeline: Pipeline,
    chunks: Iterator[pd.DataFrame],
    features: list[str],
    where: str,
    label: str,
) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    """Each chunk with its predictions, in order: predicted here on threads; on the flow's Dask
    cluster as `predict_chunk` tasks, two per worker slot in flight (memory bounded here and on
    the workers). Reading, writing and the log stay on this process."""
    slots = current_dask_slots()
    if slots is None:
        for chunk in chunks:
            yield chunk, predict_rows(pipeline, chunk, features, where, label)
        return
    pending: deque[tuple[pd.DataFrame, PrefectFuture[np.ndarray]]] = deque()
    for chunk in chunks:
        require_features(chunk, features, where, label)
        rows = chunk[features]
        pending.append((chunk, predict_chunk.submit(pipeline, rows, features, where, label)))
        if len(pending) > 2 * slots:
            done, future = pending.popleft()
            yield done, future.result()
    while pending:
        done, future = pending.popleft()
        yield done, future.result()


# No cache: hashing every chunk for a cache key would cost more than it saves.
@task(cache_policy=NO_CACHE, task_run_name="predict a chunk with {label}")
def predict_chunk(
    pipeline: Pipeline, rows: pd.DataFrame, features: list[str], where: str, label: str
) -> np.ndarray:
    """Predict one chunk of a batch on a Dask worker, with the worker's own cores."""
    with openmp_threads(cpu_count()):
        return predict_rows(pipeline, rows, features, where, label)


def scored_record(
    model: ModelVersionRef, request_id: str, rows: pd.DataFrame, predictions: np.ndarray
) -> PredictionRecord:
    """One prediction-log record for a scored chunk (no labels yet), marked as batch rows."""
    columns = {str(c): rows[c].tolist() for c in rows.columns}
    return PredictionRecord(
        request_id, time.time(), model.name, model.version, columns, predictions, None, 0, "batch"
    )


def log_scored_chunk(store: LogStore, record: PredictionRecord, label: str) -> int:
    """Append a chunk as the service does (a refused row dead-lettered, the rest written); the
    rows dead-lettered. A log that is down fails the run, naming the log and the chunk."""
    outcome = log_isolated(store, "predictions", [record])
    if outcome.outage:
        raise ScoringError(
            f"cannot append chunk {record.request_id} of {label} to the prediction log: "
            f"{outcome.outage}"
        )
    return len(outcome.dead)


class ChunkProgress:
    """A progress artifact and a log line per chunk of a batch; the total is estimated from the
    file (a Parquet footer, a CSV's line count) and unknown for SQL (the bar then says so)."""

    def __init__(self, kind: str, name: str, source: Source, chunk_rows: int, verb: str) -> None:
        self.expected, self.verb = expected_rows(source), verb
        self.rows = self.chunks = 0
        self.total = math.ceil(self.expected / chunk_rows) if self.expected else 0
        self._bar = Progress(
            artifact_key(kind, name), self.total or 1, f"{verb} 0 chunks of {source.describe()}"
        )

    def advance(self, rows: int) -> None:
        """One more chunk of `rows` rows is done."""
        self.rows, self.chunks = self.rows + rows, self.chunks + 1
        of = f"/{max(self.total, self.chunks)}" if self.total else ""
        line = f"{self.verb} chunk {self.chunks}{of} ({self.rows:,} rows)"
        get_run_logger().info(line)
        self._bar.update(self.chunks if self.total else 0, line)


def expected_rows(source: Source) -> int | None:
    """About how many rows a file source holds, without parsing it; None for SQL, and for a
    file that cannot be read (the progress bar goes without a total: the reading itself is what
    fails, naming the file and what is wrong with it)."""
    try:
        if isinstance(source, ParquetSource):
            return pq.read_metadata(source.path).num_rows
        if isinstance(source, CsvSource):
            with open(source.path, "rb") as file:
                blocks = iter(lambda: file.read(1 << 20), b"")
                lines = sum(block.count(b"\n") for block in blocks)
            return max(lines - 1, 0)  # the header; quoted newlines make it an estimate
    except (OSError, pa.ArrowException):
        return None
    return None


@task(task_run_name="publish scoring summary")
def publish_scoring_summary(summary: ScoringSummary, config: PipelineConfig) -> None:
    """A markdown artifact: rows, duration, model version and where the predictions are."""
    create_markdown_artifact(
        key=artifact_key("scoring", config.name),
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
