"""Model packaging: how every model is logged (skops, never pickle), checked and registered."""

from __future__ import annotations

from importlib.metadata import version as installed_version

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.models.model import ModelInfo
from mlflow.tracking import MlflowClient
from mlflow.utils.requirements_utils import warn_dependency_requirement_mismatches
from sklearn.pipeline import Pipeline

from prefect_mlops.errors import RegistryError
from prefect_mlops.registry import CHALLENGER
from prefect_mlops.results import GateCheck, LoggedModel, ModelVersionRef

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


def warm_up_model_logging() -> list[str]:
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


def check_model_loads(logged: LoggedModel, model: Pipeline, example: pd.DataFrame) -> GateCheck:
    """Load the logged model back through MLflow; a gate check that it predicts like `model`."""
    rule = "logged model loads and reproduces predictions"
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


def register_version(
    client: MlflowClient, name: str, logged: LoggedModel, tags: dict[str, str]
) -> ModelVersionRef:
    """A new version of `name` with alias `challenger`, or nothing at all (no half version)."""
    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise RegistryError(f"cannot create registered model {name!r}: {exc}") from exc
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
