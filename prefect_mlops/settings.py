"""The one settings object for the environment: where things live, never what to train."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from prefect_mlops.artifact_store import SNAPSHOTS, ArtifactStore, is_remote, normalize_root
from prefect_mlops.dask_runner import parse_task_runner


class Settings(BaseSettings):
    """Environment of a run, read from `MLOPS_*` variables (and `MLFLOW_TRACKING_URI`)."""

    model_config = SettingsConfigDict(env_prefix="MLOPS_", extra="ignore")

    tracking_uri: str = Field(
        default="sqlite:///mlflow.db",
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "MLOPS_TRACKING_URI"),
    )
    registry_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MLFLOW_REGISTRY_URI", "MLOPS_REGISTRY_URI"),
    )
    # Where every run's artifacts live: a local folder (made absolute) or an fsspec URL
    # (`s3://bucket/prefix`, `gs://...`, `abfs://...`; the `s3` extra brings s3fs). Snapshots
    # and splits are written there and read back by their URI on any host.
    artifact_root: str = "artifacts"
    # fsspec arguments of the root's store, JSON in MLOPS_ARTIFACT_STORAGE_OPTIONS, e.g.
    # {"client_kwargs": {"endpoint_url": "http://127.0.0.1:9000"}}. Keys and secrets come from
    # the store's own environment (AWS_ACCESS_KEY_ID, ...), never from here or a YAML file.
    artifact_storage_options: dict[str, Any] = Field(default_factory=dict)
    # With an object-store root: the folder of what stays on this host (the read-through cache,
    # the Parquet prediction log, monitoring folders, the Evidently workspace). Unused otherwise.
    local_artifact_root: Path = Path("artifacts")
    # The prediction log on a database (SQLAlchemy URL) for every reader and writer that is not
    # told otherwise: the service, batch scoring, monitoring and rollouts. `mlops up --profile
    # production` sets MLOPS_SERVE_LOG_URL for the service and the worker alike, so monitoring
    # reads where the service writes. Unset: the Parquet log under the artifact root.
    prediction_log_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MLOPS_PREDICTION_LOG_URL", "MLOPS_SERVE_LOG_URL"),
    )
    # The services' bearer token, for flows that read a service's /metrics (rollouts).
    serve_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("MLOPS_SERVE_TOKEN", "MLOPS_SERVICE_TOKEN")
    )
    gx_root: Path = Path("great_expectations")
    # Validation reads a snapshot this many rows at a time: about 0.5 GB of pandas at the
    # example's 16 columns, the peak whatever the snapshot's size.
    validation_chunk_rows: int = Field(default=1_000_000, ge=1)
    # Sources that are read whole (a training window, a SQL source) are refused above these:
    # pandas holds about 8x a CSV's size (12.8 GB peak for a 1.56 GB file).
    max_whole_read_bytes: int = Field(default=256 * 2**20, ge=1)
    max_whole_read_rows: int = Field(default=2_000_000, ge=1)
    # A tracking server that does not answer fails a call in seconds, not MLflow's minutes
    # (120 s timeout, 7 retries with exponential backoff by default). Applied by tracking.py.
    http_timeout_seconds: int = Field(
        default=10,
        ge=1,
        validation_alias=AliasChoices("MLFLOW_HTTP_REQUEST_TIMEOUT", "MLOPS_HTTP_TIMEOUT_SECONDS"),
    )
    http_max_retries: int = Field(
        default=2,
        ge=0,
        validation_alias=AliasChoices("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLOPS_HTTP_MAX_RETRIES"),
    )
    http_backoff_factor: int = Field(
        default=1,
        ge=0,
        validation_alias=AliasChoices(
            "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "MLOPS_HTTP_BACKOFF_FACTOR"
        ),
    )
    # How long a champion move waits for another run's move to finish.
    champion_lock_timeout_seconds: float = Field(default=300.0, gt=0)
    # A Running flow run of another host (or with no recorded process) whose flow and task runs
    # have not changed state for this long is taken for dead by the recovery pass.
    crash_after_seconds: float = Field(default=6 * 3600.0, gt=0)
    # The stack's report server (`mlops up` sets it): HTML reports are linked by their URL there
    # (prefect_mlops.report_links); unset, they are named by path.
    reports_url: str | None = None
    # The stack's prediction service (`mlops up` sets it): a training run that makes a version
    # champion links the service's page of the model; unset, the version in MLflow only.
    service_url: str | None = None
    # Where the training and batch-scoring flows' submitted tasks run (MLOPS_TASK_RUNNER):
    # "threads" in the flow process, "dask" on a local Dask cluster started with the flow run, or
    # a Dask scheduler's address ("tcp://host:8786"). Dask needs the `dask` extra.
    task_runner: str = "threads"

    @field_validator("task_runner")
    @classmethod
    def _check_task_runner(cls, value: str) -> str:
        parse_task_runner(value)  # the error names what is accepted
        return value.strip()

    @field_validator("artifact_root", mode="before")
    @classmethod
    def _absolute_root(cls, value: object) -> object:
        """Made absolute where the settings are built (a URL is kept as it is), so every lineage
        tag, report link and log location recorded from it names the same place from any
        working directory; a URL root is the one that other hosts resolve without a shared
        filesystem."""
        return normalize_root(value) if isinstance(value, str | os.PathLike) else value

    @field_validator("local_artifact_root")
    @classmethod
    def _absolute_local_root(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    @property
    def local_root(self) -> Path:
        """The folder of this host's artifacts: the artifact root itself when it is local."""
        return (
            self.local_artifact_root if is_remote(self.artifact_root) else Path(self.artifact_root)
        )

    def artifact_store(self) -> ArtifactStore:
        """The store of snapshots and splits (prefect_mlops.artifact_store)."""
        return ArtifactStore(
            root=self.artifact_root,
            cache_dir=self.local_root / "cache",
            storage_options=self.artifact_storage_options,
            tracking_uri=self.tracking_uri,
        )

    @property
    def snapshot_dir(self) -> Path:
        """Where snapshots are written on this host, one file per content fingerprint: the
        root's `snapshots` folder, or its place in the cache before it is published."""
        store = self.artifact_store()
        return store.local_path(store.uri(SNAPSHOTS))

    @property
    def quarantine_dir(self) -> Path:
        """Batches that failed validation, kept for a person to inspect."""
        return self.local_root / "quarantine"

    @property
    def prediction_log_dir(self) -> Path:
        """The Parquet prediction log every service, scoring run and monitoring run shares (on
        this host only: several hosts share the SQL log, `prediction_log_url`)."""
        return self.local_root / "prediction_log"

    @property
    def monitoring_dir(self) -> Path:
        """Monitoring outputs: one folder per run with the window, reports and summary."""
        return self.local_root / "monitoring"

    @property
    def evidently_dir(self) -> Path:
        """The local Evidently workspace (`evidently ui --workspace <this>`)."""
        return self.local_root / "evidently"

    @property
    def mlflow_artifact_dir(self) -> Path:
        """Artifact location of experiments created on a local (non-server) tracking store."""
        return self.local_root / "mlflow"

    @property
    def is_local_tracking(self) -> bool:
        """True when MLflow runs in-process (SQLite or file store) rather than on a server."""
        return not self.tracking_uri.startswith(("http://", "https://", "databricks"))
