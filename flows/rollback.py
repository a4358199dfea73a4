"""The rollback flow: restore the previous champion in one step."""

from __future__ import annotations

from prefect import flow
from pydantic import BaseModel, Field

from prefect_mlops.results import ModelVersionRef
from prefect_mlops.settings import Settings
from tasks.recovery import recover_crashed_runs
from tasks.registry import rollback_model


class RollbackParams(BaseModel):
    """Which registered model to roll back."""

    model_name: str = Field(default="bikeshare-demand", description="registered model")


@flow(name="rollback", description="Swap the champion and previous-champion aliases.")
def rollback_flow(params: RollbackParams = RollbackParams()) -> ModelVersionRef:  # noqa: B008
    """Make the previous champion the champion again (run twice to undo)."""
    settings = Settings()
    recover_crashed_runs(settings)
    return rollback_model(params.model_name, settings)
