"""Registry: log, verify, register and promote models in MLflow, never leaving half a change."""

from __future__ import annotations

from importlib.metadata import version as installed_version

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.models.model import ModelInfo
from mlflow.utils.requirements_utils import warn_dependency_requirement_mismatches
from prefect import get_run_logger, task
from sklearn.pipeline import Pipeline

from prefect_mlops.context import TrainingContext
from prefect_mlops.errors import RegistryError
from prefect_mlops.evaluation import holdout_metrics
from prefect_mlops.io import read_parquet, read_parquet_head
from prefect_mlops.lineage import lineage_tags
from prefect_mlops.registry import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS_CHAMPION,
    aliases_of,
    move_champion,
    version_by_alias,
)
from prefect_mlops.results import (
    ChampionScore,
    FeatureSchema,
    GateCheck,
    LoggedModel,
    ModelVersionRef,
    PreparedData,
    SplitRefs,
)
from prefect_mlops.settings import Settings
from prefect_mlops.tracking import mlflow_client, use_tracking
from tasks.policies import IO_RETRIES, RELEASES_MEMORY

# skops refuses unknown types on load. We trust the model's own transformers (and the names
# 0.1.0 models give them, see tasks.features) and a reviewed list of library types our
# estimators need; the files are written by this flow, never uploaded.
TRUSTED_MODULE_PREFIXES = ("prefect_mlops.transformers.", "tasks.features.")
REVIEWED_TYPES = frozenset(
    {
        "numpy.dtype",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.tree._tree.Tree",
    }
)
MODEL_REQUIREMENTS = ("scikit-learn", "skops", "pandas", "numpy", "mlflow", "scipy")


def trusted_types(model: Pipeline) -> list[str]:
    """The project's own transformers in a pipeline, which skops must be told to trust."""
    # Imported here, not at the top: importing skops.io lists every scikit-learn estimator
    # (about 0.5 s), which only logging a model needs, off the flow's critical path.
    import skops.io

    untrusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    return sorted(
        t for t in untrusted if t.startswith(TRUSTED_MODULE_PREFIXES) or t in REVIEWED_TYPES
    )


def pinned_requirements() -> list[str]:
    """Exact versions of what the model needs, so MLflow does not infer them (slow)."""
    return [f"{name}=={installed_version(name)}" for name in MODEL_REQUIREMENTS]


@task
def prepare_model_logging() -> list[str]:
    """Pin the model's requirements, checked against this environment, and load skops.

    The first model logged in a process pays for importing skops (it lists every scikit-learn
    estimator) and for MLflow's scan of the installed packages behind that check: about 1.3 s.
    The training flow runs this beside the refit, so logging the refit model does not
    wait for either.
    """
    import skops.io  # noqa: F401  # loaded once per process; trusted_types uses it

    requirements = pinned_requirements()
    warn_dependency_requirement_mismatches(requirements)  # what log_model runs, cached by MLflow
    return requirements


def log_sklearn_model(
    model: Pipeline,
    example: pd.DataFrame,
    run_id: str,
    requirements: list[str] | None = None,
) -> ModelInfo:
    """Log a pipeline to a run the way every model here is logged: skops (no pickle), signature
    and input example from `example`, explicit requirements (inferring them takes seconds)."""
    return mlflow.sklearn.log_model(
        model,
        name="model",
        run_id=run_id,
        serialization_format="skops",
        skops_trusted_types=trusted_types(model),
        signature=infer_signature(example, model.predict(example)),
        input_example=example,
        pip_requirements=requirements or pinned_requirements(),
    )


@task(**IO_RETRIES)
def log_model(
    model: Pipeline,
    split: SplitRefs,
    schema: FeatureSchema,
    run_id: str,
    settings: Settings,
    requirements: list[str] | None = None,
) -> LoggedModel:
    """Log the fitted pipeline to the run with signature, input example and skops format."""
    use_tracking(settings)
    example = read_parquet_head(split.holdout_uri, 5, columns=schema.features)
    info = log_sklearn_model(model, example, run_id, requirements)
    return LoggedModel(model_uri=info.model_uri, run_id=run_id, model_id=info.model_id)


@task
def verify_model_loads(
    logged: LoggedModel,
    model: Pipeline,
    split: SplitRefs,
    schema: FeatureSchema,
    settings: Settings,
) -> GateCheck:
    """Load the logged model back through MLflow and check it predicts like the fitted one."""
    example = read_parquet_head(split.holdout_uri, 20, columns=schema.features)
    rule = "logged model loads and reproduces predictions"
    use_tracking(settings)
    try:
        loaded = mlflow.pyfunc.load_model(logged.model_uri)
        served = np.asarray(loaded.predict(example))
    except Exception as exc:  # any failure to load is a gate violation, reported, not raised
        return GateCheck(rule=rule, passed=False, detail=f"{type(exc).__name__}: {exc}")
    expected = np.asarray(model.predict(example))
    same = served.shape == expected.shape and (
        np.array_equal(served, expected)
        if expected.dtype.kind not in "fc"
        else np.allclose(served, expected, rtol=1e-6, atol=1e-9)
    )
    detail = f"{logged.model_uri} predicted {len(example)} rows" + ("" if same else " differently")
    return GateCheck(rule=rule, passed=bool(same), detail=detail)


@task(**RELEASES_MEMORY)
def score_champion(
    name: str, split: SplitRefs, schema: FeatureSchema, settings: Settings
) -> ChampionScore | None:
    """Score the current champion on the same holdout, or None when there is no champion."""
    version = version_by_alias(mlflow_client(settings), name, CHAMPION)
    if version is None:
        return None
    use_tracking(settings)
    holdout = read_parquet(split.holdout_uri, columns=schema.columns())
    try:
        champion = mlflow.sklearn.load_model(f"models:/{name}/{version}")
        metrics = holdout_metrics(champion, holdout, schema)
    except (MlflowException, KeyError, ValueError) as exc:
        get_run_logger().warning("champion v%s cannot score this holdout: %s", version, exc)
        return ChampionScore(version=version, error=f"{type(exc).__name__}: {exc}")
    return ChampionScore(version=version, metrics=metrics)


@task(**IO_RETRIES)
def register_model(
    logged: LoggedModel, ctx: TrainingContext, data: PreparedData
) -> ModelVersionRef:
    """Register the logged model as a new version and point `challenger` at it, or undo both."""
    config, settings = ctx.config, ctx.settings
    name = config.registered_model_name
    lineage = lineage_tags(data.snapshot, data.validation, config, ctx.origin)
    tags = {**lineage, "mlflow_run_id": logged.run_id}
    client = mlflow_client(settings)
    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise RegistryError(f"cannot create registered model {name!r}: {exc}") from exc
    use_tracking(settings)  # the client resolves `models:/m-...` sources through the fluent API
    created = client.create_model_version(
        name, source=logged.model_uri, run_id=logged.run_id, tags=tags, model_id=logged.model_id
    )
    try:
        client.set_registered_model_alias(name, CHALLENGER, created.version)
    except MlflowException as exc:
        client.delete_model_version(name, created.version)  # no version without its alias
        raise RegistryError(
            f"cannot set alias {CHALLENGER!r} on {name} v{created.version}"
        ) from exc
    return ModelVersionRef(name=name, version=str(created.version), aliases=[CHALLENGER])


@task(**IO_RETRIES)
def promote_model(name: str, version: str, reason: str, settings: Settings) -> ModelVersionRef:
    """Make `version` the champion; the old champion stays reachable as `previous-champion`."""
    client = mlflow_client(settings)
    try:
        client.get_model_version(name, version)
    except MlflowException as exc:
        raise RegistryError(f"{name} has no version {version!r}") from exc
    move_champion(client, name, version)
    client.set_model_version_tag(name, version, "promotion_reason", reason)
    return ModelVersionRef(name=name, version=version, aliases=aliases_of(client, name, version))


@task(**IO_RETRIES)
def rollback_model(name: str, settings: Settings) -> ModelVersionRef:
    """Swap `champion` and `previous-champion`: one step back, and one step forward again."""
    client = mlflow_client(settings)
    previous = version_by_alias(client, name, PREVIOUS_CHAMPION)
    if previous is None:
        raise RegistryError(f"{name} has no {PREVIOUS_CHAMPION!r} alias to roll back to")
    move_champion(client, name, previous)
    return ModelVersionRef(name=name, version=previous, aliases=aliases_of(client, name, previous))
