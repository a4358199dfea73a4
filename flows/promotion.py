"""The promotion flow: make a registered version the champion, by hand, from the Prefect UI."""

from __future__ import annotations

from prefect import flow
from pydantic import BaseModel, Field

from prefect_mlops.results import ModelVersionRef
from prefect_mlops.settings import Settings
from tasks.recovery import recover_crashed_runs
from tasks.registry import promote_model


class PromotionParams(BaseModel):
    """Which version of which registered model becomes champion."""

    model_name: str = Field(default="bikeshare-demand", description="registered model")
    version: str = Field(description="version to promote")
    reason: str = Field(default="manual promotion", description="recorded on the version")


@flow(name="promotion", description="Point the champion alias at a chosen model version.")
def promotion_flow(params: PromotionParams) -> ModelVersionRef:
    """Promote a version; the old champion stays reachable as previous-champion."""
    settings = Settings()
    recover_crashed_runs(settings)
    return promote_model(params.model_name, params.version, params.reason, settings)
