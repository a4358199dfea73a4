"""Lineage: what ties a run or model version to its orchestrator run, data, validation, code."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from mlflow.data.dataset_source import DatasetSource
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.meta_dataset import MetaDataset
from mlflow.models import infer_signature
from pydantic import BaseModel, Field

from prefect_mlops.artifact_store import MLFLOW_ARTIFACTS, ArtifactStore, is_remote, local_file
from prefect_mlops.config import PipelineConfig
from prefect_mlops.results import Snapshot, SplitRefs, ValidationSummary

FLOW_RUN_TAG = "prefect.flow_run_id"
FLOW_RUN_URL_TAG = "prefect.flow_run_url"
HOLDOUT_TAG = "holdout"
# What a person reads on a registered version (the run keeps the full lineage): the Prefect run,
# the data and config it was trained on (reruns and monitoring read these), the code, the holdout.
VERSION_LINEAGE_TAGS = (
    FLOW_RUN_TAG,
    FLOW_RUN_URL_TAG,
    "data_fingerprint",
    "data_snapshot",
    "config_hash",
    "git_commit",
    "validation_result",
    HOLDOUT_TAG,
)
SCHEMA_SAMPLE_ROWS = 1000


class RunOrigin(BaseModel):
    """Who runs this and why: the orchestrator's run (Prefect flow run) and the trigger."""

    flow_run_id: str = "none"
    flow_run_name: str = "none"
    reason: str = "manual"
    flow_run_url: str | None = Field(default=None, description="the run in the Prefect UI")


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
    snapshot: Snapshot, validation: ValidationSummary, config: PipelineConfig, origin: RunOrigin
) -> dict[str, str]:
    """Tags that tie a run or model version to its Prefect run, data, validation and code."""
    return {
        FLOW_RUN_TAG: origin.flow_run_id,
        "prefect.flow_run_name": origin.flow_run_name,
        "data_fingerprint": snapshot.fingerprint,
        "data_snapshot": snapshot.uri,
        "data_source": snapshot.source,
        "validation_result": "passed" if validation.success else "failed",
        "validation_checkpoint": validation.checkpoint,
        "config_hash": config.fingerprint(),
        "git_commit": git_commit(),
        **({FLOW_RUN_URL_TAG: origin.flow_run_url} if origin.flow_run_url else {}),
    }


def holdout_identity(split: SplitRefs) -> str:
    """Which holdout a run was scored on: its split's fingerprint (the content-addressed folder
    named by snapshot, split settings and row key) and its row count, e.g. `3f9c0a1b2c3d4e5f:1729`.

    Runs with the same value were scored on the same rows; the MLflow UI compares like with like
    when filtered on it (`tags.holdout = '...'`).
    """
    return f"{Path(split.holdout_uri).parent.name}:{split.holdout_rows}"


def version_tags(lineage: dict[str, str], split: SplitRefs) -> dict[str, str]:
    """The lineage a registered version carries: `VERSION_LINEAGE_TAGS` of `lineage`, and its
    holdout (how the holdout was cut stays on the training run, where comparisons read it)."""
    tags = {**lineage, HOLDOUT_TAG: holdout_identity(split)}
    return {key: tags[key] for key in VERSION_LINEAGE_TAGS if key in tags}


class ProxiedArtifactSource(DatasetSource):
    """A dataset on the MLflow server's proxied artifact store (`mlflow-artifacts:/...`), for
    which MLflow registers no dataset source of its own; recorded as `{"uri": ...}` like the
    others."""

    def __init__(self, uri: str) -> None:
        self.uri = uri

    @staticmethod
    def _get_source_type() -> str:
        return MLFLOW_ARTIFACTS

    def load(self, dst_path: str | None = None) -> str:
        """Download the file through the tracking server; its local path."""
        from mlflow.artifacts import download_artifacts

        return download_artifacts(artifact_uri=self.uri, dst_path=dst_path)

    @staticmethod
    def _can_resolve(raw_source: Any) -> bool:
        return False  # built explicitly by describe_dataset, never guessed

    @classmethod
    def _resolve(cls, raw_source: Any) -> ProxiedArtifactSource:
        return cls(str(raw_source))

    def to_dict(self) -> dict[str, Any]:
        return {"uri": self.uri}

    @classmethod
    def from_dict(cls, source_dict: dict[Any, Any]) -> ProxiedArtifactSource:
        return cls(str(source_dict["uri"]))


def dataset_source(uri: str) -> DatasetSource:
    """The MLflow dataset source of an artifact URI: a `file://` URL of a local path, the
    store's URL otherwise."""
    if not is_remote(uri):
        return resolve_dataset_source(Path(uri).resolve().as_uri())
    if uri.startswith(f"{MLFLOW_ARTIFACTS}:"):
        return ProxiedArtifactSource(uri)
    return resolve_dataset_source(uri)


class SplitDataset(MetaDataset):
    """A Parquet split as an MLflow dataset: metadata only, its rows are never loaded."""

    @property
    def profile(self) -> dict[str, int] | None:
        """No profile: computing one would read the whole split."""
        return None


def describe_dataset(
    uri: str, name: str, context: str, store: ArtifactStore | None = None
) -> MetaDataset:
    """An MLflow dataset for a Parquet split, without loading it: schema from its first rows,
    digest from the content-addressed path (it names the snapshot fingerprint and the split).
    Its source is the split's URI: a `file://` URL of a local one, the store's URL otherwise."""
    local = local_file(uri, store)
    first_rows = next(pq.ParquetFile(local).iter_batches(batch_size=SCHEMA_SAMPLE_ROWS)).to_pandas()
    digest = hashlib.sha256(f"{uri}:{context}".encode()).hexdigest()[:8]
    source = dataset_source(uri)
    schema = infer_signature(first_rows).inputs
    return SplitDataset(source=source, name=name, digest=digest, schema=schema)
