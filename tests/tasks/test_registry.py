"""Model logging helpers that need no MLflow store."""

from __future__ import annotations

from importlib.metadata import version

from prefect_mlops.packaging import MODEL_REQUIREMENTS, pinned_requirements
from tasks.registry import prepare_model_logging


def test_prepared_requirements_pin_every_model_dependency_to_what_is_installed() -> None:
    pins = prepare_model_logging.fn()
    assert pins == pinned_requirements()
    assert pins == [f"{name}=={version(name)}" for name in MODEL_REQUIREMENTS]
