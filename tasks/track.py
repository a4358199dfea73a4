"""Track: the parent MLflow run of a training flow, its lineage tags and dataset inputs."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.meta_dataset import MetaDataset
from mlflow.entities import DatasetInput, InputTag, Param, RunStatus
from mlflow.models import infer_signature
from prefect import task
from prefect.runtime import flow_run

from prefect_mlops.config import PipelineConfig
from prefect_mlops.results import Snapshot, SplitRefs, ValidationSummary
from prefect_mlops.settings import Settings
from prefect_mlops.tracking import ensure_experiment, mlflow_client
from tasks.policies import IO_RETRIES

FLOW_RUN_TAG = "prefect.flow_run_id"
SCHEMA_SAMPLE_ROWS = 1000


def git_commit() -> str:
    """The current git commit of the code, or 'unknown' outside a checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip()


def lineage_tags(
    snapshot: Snapshot, validation: ValidationSummary, config: PipelineConfig
) -> dict[str, str]:
    """Tags that tie a run or model version to its Prefect run, data, validation and code."""
    return {
        FLOW_RUN_TAG: str(flow_run.get_id() or "none"),
        "prefect.flow_run_name": str(flow_run.get_name() or "none"),
        "data_fingerprint": snapshot.fingerprint,
        "data_snapshot": snapshot.uri,
        "data_source": snapshot.source,
        "validation_result": "passed" if validation.success else "failed",
        "validation_checkpoint": validation.checkpoint,
        "config_hash": config.fingerprint(),
        "git_commit": git_commit(),
    }


def describe_dataset(uri: str, name: str, context: str) -> MetaDataset:
    """An MLflow dataset for a Parquet split, without loading it: schema from its first rows,
    digest from the content-addressed path (it names the snapshot fingerprint and the split)."""
    first_rows = next(pq.ParquetFile(uri).iter_batches(batch_size=SCHEMA_SAMPLE_ROWS)).to_pandas()
    digest = hashlib.sha256(f"{uri}:{context}".encode()).hexdigest()[:8]
    source = resolve_dataset_source(Path(uri).resolve().as_uri())
    schema = infer_signature(first_rows).inputs
    return MetaDataset(source=source, name=name, digest=digest, schema=schema)


@task(**IO_RETRIES)
def open_experiment(config: PipelineConfig, settings: Settings) -> str:
    """Connect to the tracking store and make sure the config's experiment exists; its id."""
    return ensure_experiment(mlflow_client(settings), config.experiment, settings)


@task(**IO_RETRIES)
def start_training_run(
    experiment_id: str,
    config: PipelineConfig,
    snapshot: Snapshot,
    validation: ValidationSummary,
    split: SplitRefs,
    reason: str,
    settings: Settings,
) -> str:
    """Open the parent MLflow run, tag its lineage and log the snapshot as dataset inputs."""
    client = mlflow_client(settings)
    run = client.create_run(
        experiment_id,
        run_name=f"train-{flow_run.get_name() or config.name}",
        tags={**lineage_tags(snapshot, validation, config), "trigger_reason": reason},
    )
    run_id = run.info.run_id
    params = {
        "task": str(config.task),
        "target": config.target,
        "split_strategy": config.split.strategy,
        "test_size": config.split.test_size,
        "seed": config.seed,
        "cv_folds": config.tuning.cv_folds,
        "train_rows": split.train_rows,
        "holdout_rows": split.holdout_rows,
    }
    client.log_batch(run_id, params=[Param(key, str(value)) for key, value in params.items()])
    inputs = [
        DatasetInput(
            describe_dataset(
                uri, f"{config.name}-{snapshot.fingerprint}", context
            )._to_mlflow_entity(),
            [InputTag("mlflow.data.context", context)],
        )
        for context, uri in (("training", split.train_uri), ("holdout", split.holdout_uri))
    ]
    client.log_inputs(run_id, datasets=inputs)
    return run_id


@task
def finish_training_run(run_id: str, settings: Settings) -> None:
    """Mark the parent MLflow run finished."""
    mlflow_client(settings).set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))


def fail_open_runs(settings: Settings, flow_run_id: str) -> None:
    """Mark every still-running MLflow run of a Prefect flow run as FAILED."""
    client = mlflow_client(settings)
    experiments = [e.experiment_id for e in client.search_experiments()]
    query = f"tags.`{FLOW_RUN_TAG}` = '{flow_run_id}' and attributes.status = 'RUNNING'"
    for run in client.search_runs(experiments, filter_string=query):
        client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.FAILED))
