"""`mlops deploy`: check the server and work pools first, then `prefect deploy --all`.

Prefect's own errors for an unreachable server or a missing pool are long tracebacks; these
checks name what is wrong and how to fix it before anything is deployed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import yaml
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_API_URL

from prefect_mlops.errors import MlopsError


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
    prefect = str(Path(sys.executable).parent / "prefect")
    command = [prefect, "--no-prompt", "deploy", "--all", "--prefect-file", str(prefect_yaml)]
    return subprocess.run(command, check=False).returncode
