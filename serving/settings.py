"""Settings of the prediction service, read from `MLOPS_SERVE_*` variables at start-up.

Where the prediction log lives is the environment's (`prefect_mlops.settings.Settings`), so the
service, batch scoring and monitoring share one log unless `MLOPS_SERVE_LOG_DIR` says otherwise.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from prefect_mlops.names import AliasName, SafeName
from prefect_mlops.settings import Settings


class ServeSettings(BaseSettings):
    """What to serve, where from, and the limits the service enforces."""

    model_config = SettingsConfigDict(env_prefix="MLOPS_SERVE_", extra="ignore")

    model_name: SafeName = Field(description="registered model name")
    alias: AliasName = "champion"
    tracking_uri: str = Field(
        default="sqlite:///mlflow.db",
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "MLOPS_SERVE_TRACKING_URI"),
    )
    registry_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MLFLOW_REGISTRY_URI", "MLOPS_SERVE_REGISTRY_URI"),
    )
    token: SecretStr | None = Field(default=None, description="bearer token; no auth when unset")
    token_secret_block: str | None = Field(
        default=None, description="name of a Prefect Secret block holding the bearer token"
    )
    poll_seconds: float = Field(default=30.0, ge=0.0, description="alias polling; 0 disables")
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    max_rows: int = Field(default=100_000, ge=1)
    use_onnx: bool = Field(default=True, description="compile to ONNX when parity holds")
    docs: bool = Field(
        default=True, description="serve /docs, /redoc and /openapi.json (behind the token)"
    )
    fast_lane: bool = Field(
        default=True, description="answer the hot POST routes past FastAPI (serving.fast_lane)"
    )
    log_url: str | None = Field(
        default_factory=lambda: Settings().prediction_log_url,
        description="SQLAlchemy URL of the prediction log (MLOPS_PREDICTION_LOG_URL when unset); "
        "Parquet when neither is set",
    )
    log_dir: Path = Field(
        default_factory=lambda: Settings().prediction_log_dir,
        description="Parquet prediction log; $MLOPS_ARTIFACT_ROOT/prediction_log when unset",
    )
    log_spool_dir: Path | None = Field(
        default=None,
        description="local spool for rows a down log store could not take at shutdown, "
        "replayed on the next start; `<log_dir>_spool` when unset",
    )
    log_flush_seconds: float = Field(default=1.0, gt=0.0)
    log_queue_size: int = Field(default=100_000, ge=1)
    shadow_queue_size: int = Field(
        default=10_000,
        ge=1,
        description="shadow copies waiting for the challenger; beyond it a copy is dropped "
        "and counted (mlops_serve_shadow_dropped_total), never the client's request",
    )
    feedback_known_requests: int = Field(
        default=100_000,
        ge=1,
        description="recent request ids /feedback checks in memory; older ones are looked up "
        "in the prediction log",
    )

    @property
    def model_uri(self) -> str:
        """The `models:/` URI the service follows."""
        return f"models:/{self.model_name}@{self.alias}"
