"""Model packaging: how every model is logged (skops, never pickle), checked and registered."""

from __future__ import annotations

import json
import logging
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import Model, ModelSignature, infer_signature
from mlflow.models.model import MLMODEL_FILE_NAME, ModelInfo
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, Schema
from mlflow.utils.mlflow_tags import MLFLOW_MODEL_VERSIONS
from mlflow.utils.requirements_utils import warn_dependency_requirement_mismatches
from sklearn.pipeline import Pipeline

from prefect_mlops.errors import RegistryError
from prefect_mlops.features import nullable_features
from prefect_mlops.lineage import RunOrigin
from prefect_mlops.registry import CHALLENGER
from prefect_mlops.reports import champion_markdown, gate_markdown
from prefect_mlops.results import (
    Evaluation,
    GateCheck,
    GateDecision,
    LoggedModel,
    ModelVersionRef,
    PromotionDecision,
)

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
# The formats whose loading runs no code from the file: skops (a zip of JSON and arrays, with
# unknown types refused) and ONNX (a protobuf graph). Pickle and cloudpickle run the payload.
SAFE_FORMATS = ("skops", "onnx")


class UnsafeModelError(RegistryError):
    """A model version is in a format whose loading could run code from it; it is not read."""


@dataclass(frozen=True)
class PackagedModel:
    """A loaded model version: the fitted model, its MLmodel metadata and its input example."""

    model: Any
    metadata: Model
    input_example: Any


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
    name: str = "model",
    params: dict[str, str] | None = None,
) -> ModelInfo:
    """Log a pipeline to a run the way every model here is logged: skops (no pickle), signature
    and input example from `example`, explicit requirements (inferring them takes seconds).

    The LoggedModel is created first in the run's own experiment, named `name` (the registered
    model's name) with `params`: `log_model` alone files it under the Default experiment when
    no run is active on the calling thread, which Prefect's worker threads never have.
    """
    run = MlflowClient().get_run(run_id)
    logged = mlflow.initialize_logged_model(
        name=name,
        source_run_id=run_id,
        experiment_id=run.info.experiment_id,
        params=params,
        model_type="sklearn.Pipeline",
    )
    with _quiet_serving_input_check():
        return mlflow.sklearn.log_model(
            model,
            name=name,
            model_id=logged.model_id,
            run_id=run_id,
            serialization_format="skops",
            skops_trusted_types=trusted_types(model),
            signature=model_signature(model, example),
            input_example=example,
            pip_requirements=requirements or pinned_requirements(),
        )


def model_signature(model: Pipeline, example: pd.DataFrame) -> ModelSignature:
    """MLflow's signature of `example`, each input column optional (`required=False`) exactly
    when the fitted model answers a missing value of it (`features.nullable_features`).

    MLflow alone marks a column optional when the example happens to hold a null; the service
    reads `required` as "null accepted", so it is derived from the pipeline instead. Models
    logged before this (0.1.0) keep the signature MLflow inferred, and are served by it.
    """
    with warnings.catch_warnings():  # integer columns with nulls are served (pandas' NA)
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        inferred = infer_signature(example, model.predict(example))
    if inferred.inputs is None or not all(
        isinstance(c, ColSpec) and c.name for c in inferred.inputs.inputs
    ):
        return inferred
    nullable = set(nullable_features(model, example))
    inputs = Schema(
        [ColSpec(c.type, c.name, required=c.name not in nullable) for c in inferred.inputs.inputs]
    )
    return ModelSignature(inputs=inputs, outputs=inferred.outputs, params=inferred.params)


class _PickleSwitchedOff(logging.Filter):
    """Drops MLflow's warning that its own load of the input example failed for the switch."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (
            message.startswith("Failed to validate serving input example")
            and "MLFLOW_ALLOW_PICKLE_DESERIALIZATION" in message
        )


@contextmanager
def _quiet_serving_input_check() -> Iterator[None]:
    """log_model loads the model back through MLflow to check the example, which the process's
    pickle switch refuses (skops included); `check_model_loads` makes that check through
    `load_pipeline` instead, so the warning would only mislead."""
    logger, quiet = logging.getLogger("mlflow.models.model"), _PickleSwitchedOff()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def check_model_loads(logged: LoggedModel, model: Pipeline, example: pd.DataFrame) -> GateCheck:
    """Load the logged model back through MLflow; a gate check that it predicts like `model`."""
    rule = "logged model loads and reproduces predictions"
    try:
        loaded = load_pipeline(logged.model_uri)
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
    if logged.model_id:
        link_logged_model(client, logged.model_id, name, str(created.version))
    return ModelVersionRef(name=name, version=str(created.version), aliases=[CHALLENGER])


def link_logged_model(client: MlflowClient, model_id: str, name: str, version: str) -> None:
    """List the version on its LoggedModel (`mlflow.modelVersions`), as `mlflow.register_model`
    does: the model's page in the MLflow UI then links to it."""
    listed = client.get_logged_model(model_id).tags.get(MLFLOW_MODEL_VERSIONS)
    versions = [*json.loads(listed or "[]"), {"name": name, "version": version}]
    client.set_logged_model_tags(model_id, {MLFLOW_MODEL_VERSIONS: json.dumps(versions)})


# MLflow's SQL store holds at most 5,000 characters of a version's description.
MAX_DESCRIPTION_CHARS = 5000


def estimator_params(model: Pipeline) -> dict[str, str]:
    """The final estimator's family and parameters, as a LoggedModel's params (readable)."""
    estimator = model.steps[-1][1]
    params = {"estimator": type(estimator).__name__}
    for key, value in sorted(estimator.get_params(deep=False).items()):
        params[key] = f"{value:.6g}" if isinstance(value, float) else str(value)
    return params


def version_description(
    decision: GateDecision,
    promotion: PromotionDecision,
    evaluation: Evaluation,
    origin: RunOrigin,
    holdout: str,
) -> str:
    """A registered version's description (Markdown): the promotion outcome and why, the gate's
    rules against their thresholds, the holdout metrics and the champion comparison."""
    outcome = "Promoted to champion" if promotion.promote else "Not promoted (champion kept)"
    flow_run = origin.flow_run_name if origin.flow_run_name != "none" else origin.flow_run_id
    link = f"[{flow_run}]({origin.flow_run_url})" if origin.flow_run_url else f"`{flow_run}`"
    metrics = "\n".join(f"| {name} | {value:.4g} |" for name, value in evaluation.metrics.items())
    text = (
        f"**{outcome}**: {promotion.reason}.\n\n"
        f"Trained by Prefect flow run {link} (reason: {origin.reason}); holdout `{holdout}`.\n\n"
        f"{gate_markdown(decision).replace('## ', '### ', 1)}\n"
        f"### Holdout metrics\n| metric | value |\n|---|---|\n{metrics}\n\n"
        f"{champion_markdown(decision.champion).replace('## ', '### ', 1)}"
    )
    if len(text) > MAX_DESCRIPTION_CHARS:
        text = (
            text[: MAX_DESCRIPTION_CHARS - 40].rsplit("\n", 1)[0] + "\n\n(shortened; see the run)"
        )
    return text


def model_format(metadata: Model) -> str:
    """The serialisation format an MLmodel declares: skops, onnx, pickle, cloudpickle, ..."""
    flavors = metadata.flavors
    if "sklearn" in flavors:  # MLflow reads a missing format as pickle, so do we
        return str(flavors["sklearn"].get("serialization_format", "pickle"))
    if "onnx" in flavors:
        return "onnx"
    if "python_function" in flavors:  # no loader module: a cloudpickled python_model
        loader = flavors["python_function"].get("loader_module")
        return f"python_function ({loader or 'cloudpickle'})"
    return ", ".join(sorted(flavors)) or "no flavor"


def check_safe_format(metadata: Model, label: str) -> str:
    """The declared format when it is safe to load; UnsafeModelError naming `label` otherwise."""
    declared = model_format(metadata)
    loader = metadata.flavors.get("python_function", {}).get("loader_module")
    # An ONNX flavor whose pyfunc loader is another module would be loaded by that module.
    redirected = declared == "onnx" and loader not in (None, "mlflow.onnx")
    if declared not in SAFE_FORMATS or redirected:
        raise UnsafeModelError(
            f"{label} is stored as {declared!r}"
            + (f" with loader {loader!r}" if redirected else "")
            + f"; only {' or '.join(SAFE_FORMATS)} models are loaded (pickle-based formats "
            "run code from the file), so it was not read"
        )
    return declared


def load_packaged(
    uri: str, tracking_uri: str | None = None, registry_uri: str | None = None
) -> PackagedModel:
    """Load a model version (a `models:/` URI, any artifact URI or a local folder) without pickle.

    Its MLmodel is read first and every format but skops or ONNX is refused before the payload
    is downloaded; a skops file is opened with this project's trust list, never the one the
    MLmodel carries (a crafted MLmodel could trust anything).
    """
    if Path(uri).is_dir():
        return _load_local(Path(uri), uri)
    repository = get_artifact_repository(uri, tracking_uri, registry_uri or tracking_uri)
    with tempfile.TemporaryDirectory(prefix="mlops-model-") as tmp:
        metadata = Model.load(repository.download_artifacts(MLMODEL_FILE_NAME, tmp))
        check_safe_format(metadata, uri)
        return _load_local(Path(repository.download_artifacts("", tmp)), uri, metadata)


def load_pipeline(
    uri: str, tracking_uri: str | None = None, registry_uri: str | None = None
) -> Any:
    """The fitted model of a version, loaded without pickle (see `load_packaged`)."""
    return load_packaged(uri, tracking_uri, registry_uri).model


def _load_local(folder: Path, label: str, checked: Model | None = None) -> PackagedModel:
    """The model in `folder`; `checked`: its MLmodel as already read (its file is the one the
    folder holds, downloaded first), so it is not parsed again."""
    metadata = checked or Model.load(folder / MLMODEL_FILE_NAME)
    declared = check_safe_format(metadata, label)
    if declared == "onnx":
        model: Any = mlflow.pyfunc.load_model(str(folder))  # mlflow.onnx's protobuf loader
    else:
        model = _load_skops(_payload(folder, metadata, label), label)
    return PackagedModel(model, metadata, metadata.load_input_example(str(folder)))


def _payload(folder: Path, metadata: Model, label: str) -> Path:
    """The sklearn flavor's model file, confined to the model's folder."""
    path = (folder / str(metadata.flavors["sklearn"].get("pickled_model", ""))).resolve()
    if not path.is_file() or not path.is_relative_to(folder.resolve()):
        raise UnsafeModelError(f"{label}: the model file {path.name!r} is not in the model folder")
    return path


def _load_skops(path: Path, label: str) -> Any:
    import skops.io  # see trusted_types: importing skops costs about 0.5 s

    untrusted = skops.io.get_untrusted_types(file=path)
    refused = sorted(
        t for t in untrusted if not (t.startswith(TRUSTED_MODULE_PREFIXES) or t in REVIEWED_TYPES)
    )
    if refused:
        raise UnsafeModelError(f"{label}: the skops file holds types not trusted here: {refused}")
    return skops.io.load(path, trusted=untrusted)
