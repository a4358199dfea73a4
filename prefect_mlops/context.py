"""The context one training run shares between its steps: config, environment and origin."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from prefect_mlops.config import PipelineConfig, WindowConfig
from prefect_mlops.episode import RetrainingCause
from prefect_mlops.lineage import RunOrigin
from prefect_mlops.settings import Settings


class TrainingContext(BaseModel):
    """What every step of one training run needs, built once at the flow's entry point."""

    model_config = ConfigDict(frozen=True)

    config: PipelineConfig
    settings: Settings
    origin: RunOrigin
    window: Literal["all", "recent"] = "all"
    cause: RetrainingCause | None = None  # the monitoring run whose alarm started this run

    @property
    def training_window(self) -> WindowConfig | None:
        """The recent window the run trains on, or None for all the data."""
        return self.config.training_window if self.window == "recent" else None

    @property
    def model_name(self) -> str:
        """The registered model this run trains a version of."""
        return self.config.registered_model_name
