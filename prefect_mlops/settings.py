"""The one settings object for the environment: where things live, never what to train."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    artifact_root: Path = Path("artifacts")
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

    @property
    def snapshot_dir(self) -> Path:
        """Immutable Parquet snapshots, one file per content fingerprint."""
        return self.artifact_root / "snapshots"

    @property
    def split_dir(self) -> Path:
        """Train and holdout parts of snapshots."""
        return self.artifact_root / "splits"

    @property
    def quarantine_dir(self) -> Path:
        """Batches that failed validation, kept for a person to inspect."""
        return self.artifact_root / "quarantine"

    @property
    def prediction_log_dir(self) -> Path:
        """The Parquet prediction log every service, scoring run and monitoring run shares."""
        return self.artifact_root / "prediction_log"

    @property
    def monitoring_dir(self) -> Path:
        """Monitoring outputs: one folder per run with the window, reports and summary."""
        return self.artifact_root / "monitoring"

    @property
    def evidently_dir(self) -> Path:
        """The local Evidently workspace (`evidently ui --workspace <this>`)."""
        return self.artifact_root / "evidently"

    @property
    def mlflow_artifact_dir(self) -> Path:
        """Artifact location of experiments created on a local (non-server) tracking store."""
        return self.artifact_root / "mlflow"

    @property
    def is_local_tracking(self) -> bool:
        """True when MLflow runs in-process (SQLite or file store) rather than on a server."""
        return not self.tracking_uri.startswith(("http://", "https://", "databricks"))
