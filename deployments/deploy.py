"""`mlops deploy`: check the server and work pools first, then `prefect deploy --all`.

Prefect's own errors for an unreachable server or a missing pool are long tracebacks; these
checks name what is wrong and how to fix it before anything is deployed.

`mlops deploy --config PIPELINE.yaml` deploys one model beside the others on the server: its
own `train-<model>`, `monitor-<model>`, `score-<model>` and `rollout-<model>` deployments, and
`retrain-<model>` and `rollout-<model>-on-challenger` triggers that listen to that model's events
only. They are made from prefect.yaml's training, monitoring, scoring and rollout deployments
(work pool, schedules, concurrency, trigger posture and pull steps), with the model's names and
parameters, and created by `prefect deploy` like the rest.

Monitoring events name the deployment that retrains the model in their resource's
`mlops.retrain.deployment` label, and every retrain trigger matches its own deployment's name
there: `retrain-<model>` answers `training/train-<model>`, prefect.yaml's catch-all
`retrain-on-drift` answers `training/train` only. A model with its own deployments is retrained
once per event even where the catch-all is deployed too. Registration events of a blessed
challenger do the same with `mlops.rollout.deployment`: `rollout-<model>-on-challenger` answers
`rollout/rollout-<model>`, prefect.yaml's `rollout-on-challenger` answers `rollout/rollout` only.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import yaml
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_API_URL

from prefect_mlops.config import PipelineConfig
from prefect_mlops.errors import MlopsError
from prefect_mlops.monitoring import (
    RETRAIN_DEPLOYMENT_LABEL,
    model_resource_id,
    model_retraining_deployment,
)
from prefect_mlops.preflight import load_checked_config
from prefect_mlops.rollout import ROLLOUT_DEPLOYMENT_LABEL, model_rollout_deployment
from prefect_mlops.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# The deployments of prefect.yaml a model's own deployments are made from, by entrypoint.
TEMPLATES = {
    "train": "flows/training.py:training_flow",
    "monitor": "flows/monitoring.py:monitoring_flow",
    "score": "flows/scoring.py:scoring_flow",
    "rollout": "flows/rollout.py:rollout_flow",
}


class DeployError(MlopsError):
    """Deployments cannot be created: the server or a work pool is missing."""


def check_server() -> str:
    """The API URL, after checking the server answers."""
    url = PREFECT_API_URL.value()
    if not url:
        raise DeployError(
            "PREFECT_API_URL is not set: start a server (`mlops up`) and export the URL it prints"
        )
    try:
        httpx.get(f"{url}/health", timeout=5).raise_for_status()
    except httpx.HTTPError as exc:
        raise DeployError(f"Prefect server at {url} is unreachable: {exc}") from exc
    return url


def work_pools_in(prefect_yaml: Path) -> set[str]:
    """Every work pool named by the deployments of a prefect.yaml."""
    spec = yaml.safe_load(prefect_yaml.read_text())
    return {
        d["work_pool"]["name"]
        for d in spec.get("deployments", [])
        if isinstance(d.get("work_pool"), dict) and d["work_pool"].get("name")
    }


def check_work_pools(names: set[str], url: str) -> None:
    """Refuse to deploy onto work pools that do not exist, naming them."""
    missing = []
    with get_client(sync_client=True) as client:
        for name in sorted(names):
            try:
                client.read_work_pool(name)
            except ObjectNotFound:
                missing.append(name)
    if missing:
        raise DeployError(
            f"work pool(s) {missing} do not exist on {url}: create them with "
            "`python -m deployments.setup` (or `prefect work-pool create NAME --type process`)"
        )


def deploy_all(prefect_yaml: Path) -> int:
    """Check, then run `prefect deploy --all` for the given prefect.yaml; its exit code."""
    url = check_server()
    check_work_pools(work_pools_in(prefect_yaml), url)
    return _prefect_deploy(prefect_yaml, url, capture=False).returncode


def project_path(path: Path) -> str:
    """A path as a worker in the project checkout reads it: relative when inside the project."""
    resolved = path.resolve()
    return (
        str(resolved.relative_to(PROJECT_ROOT))
        if resolved.is_relative_to(PROJECT_ROOT)
        else str(resolved)
    )


def model_deployments(
    config: PipelineConfig, config_path: str, spec: dict[str, Any], settings: Settings
) -> list[dict[str, Any]]:
    """The train, monitor and score deployments of one model, made from prefect.yaml's."""
    model = config.registered_model_name
    templates = {d.get("entrypoint"): d for d in spec.get("deployments", [])}
    missing = [entry for entry in TEMPLATES.values() if entry not in templates]
    if missing:
        raise DeployError(f"prefect.yaml has no deployment of {missing} to make {model}'s from")
    made = []
    for role, entrypoint in TEMPLATES.items():
        deployment = copy.deepcopy(templates[entrypoint])
        deployment["name"] = f"{role}-{model}"
        deployment["description"] = f"{deployment.get('description', '')} Model: {model}.".strip()
        deployment["tags"] = [t for t in deployment.get("tags", []) if t != "bikeshare"] + [model]
        params = deployment.setdefault("parameters", {}).setdefault("params", {})
        params["config_path"] = config_path
        if role == "monitor":  # its events name the model's own training deployment
            params["retrain_deployment"] = model_retraining_deployment(model)
        if role in ("train", "rollout"):
            deployment["triggers"] = [
                _model_trigger(trigger, model, config_path, role)
                for trigger in deployment.get("triggers", [])
            ]
        if role == "score":
            params["source"] = config.source.model_dump(mode="json")
            scores = settings.local_root / "scores" / f"{model}.parquet"
            params["destination"] = {"kind": "parquet", "path": str(scores)}
        made.append(deployment)
    return made


def _model_trigger(
    trigger: dict[str, Any], model: str, config_path: str, role: str
) -> dict[str, Any]:
    """prefect.yaml's retrain (or rollout) trigger, listening to one model's events that name
    its own training (or rollout) deployment, with its own config."""
    mine = copy.deepcopy(trigger)
    label, deployment = (
        (RETRAIN_DEPLOYMENT_LABEL, model_retraining_deployment(model))
        if role == "train"
        else (ROLLOUT_DEPLOYMENT_LABEL, model_rollout_deployment(model))
    )
    mine["name"] = f"retrain-{model}" if role == "train" else f"rollout-{model}-on-challenger"
    mine["match"] = {"prefect.resource.id": model_resource_id(model), label: deployment}
    mine.setdefault("parameters", {}).setdefault("params", {})["config_path"] = config_path
    return mine


def deploy_models(configs: list[Path], prefect_yaml: Path) -> tuple[list[str], int]:
    """Check, then create each config's model deployments beside what is on the server.

    Returns the lines to print and `prefect deploy`'s exit code.
    """
    settings = Settings()
    checked = [(load_checked_config(path, settings), project_path(path)) for path in configs]
    names = [config.registered_model_name for config, _ in checked]
    if len(set(names)) < len(names):
        raise DeployError(f"two configs name the same registered model: {names}")
    spec = yaml.safe_load(prefect_yaml.read_text())
    deployments = [
        d for config, path in checked for d in model_deployments(config, path, spec, settings)
    ]
    url = check_server()
    check_work_pools(
        {d["work_pool"]["name"] for d in deployments if isinstance(d.get("work_pool"), dict)}, url
    )
    generated = {key: value for key, value in spec.items() if key != "deployments"}
    generated["deployments"] = deployments
    with tempfile.TemporaryDirectory(prefix="mlops-deploy-") as folder:
        path = Path(folder) / "prefect.yaml"
        path.write_text(yaml.safe_dump(generated, sort_keys=False))
        done = _prefect_deploy(path, url, capture=True)
    if done.returncode != 0:
        raise DeployError(f"prefect deploy failed: {(done.stdout + done.stderr)[-2000:]}")
    lines = [
        f"{model}: deployments training/train-{model}, monitoring/monitor-{model}, "
        f"batch-scoring/score-{model}, rollout/rollout-{model}; triggers retrain-{model} and "
        f"rollout-{model}-on-challenger on {model_resource_id(model)} events"
        for model in names
    ]
    return lines, 0


def _prefect_deploy(
    prefect_yaml: Path, url: str, capture: bool
) -> subprocess.CompletedProcess[str]:
    """`prefect deploy --all` of a file, from the project root, against the checked server."""
    prefect = str(Path(sys.executable).parent / "prefect")
    command = [prefect, "--no-prompt", "deploy", "--all", "--prefect-file", str(prefect_yaml)]
    return subprocess.run(
        command,
        cwd=PROJECT_ROOT,
        env={**os.environ, "PREFECT_API_URL": url},
        capture_output=capture,
        text=True,
        check=False,
    )
