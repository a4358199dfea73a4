"""The container image and the container work pools wired to it.

    python -m deployments.image build   # docker build -t prefect-mlops:<version> . (engine needed)
    python -m deployments.image pools   # pools mlops-docker and mlops-kubernetes ($PREFECT_API_URL)

`build` says so and skips when no container engine answers (the docker CLI without a daemon, as
on the machines this was written on: the image has never been built there). `pools` creates (or
updates) the pools from `deployments/work-pools/docker.json` and `kubernetes.json`, whose `image`
defaults to the tag `build` makes; the workers of those pools need `prefect-docker` or
`prefect-kubernetes` installed beside Prefect (the flow runs themselves need only the image).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]
TEMPLATES = PROJECT / "deployments" / "work-pools"
IMAGE = "prefect-mlops"
POOLS = {"mlops-docker": "docker", "mlops-kubernetes": "kubernetes"}


def image_tag() -> str:
    """`prefect-mlops:<version of pyproject.toml>`, the tag the templates default to."""
    import tomllib

    version = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]["version"]
    return f"{IMAGE}:{version}"


def load_template(kind: str) -> dict[str, Any]:
    """The base job template of a `docker` or `kubernetes` work pool."""
    template: dict[str, Any] = json.loads((TEMPLATES / f"{kind}.json").read_text())
    return template


def engine_problem() -> str | None:
    """Why no image can be built here, or None when a container engine answers."""
    if shutil.which("docker") is None:
        return "no docker CLI on PATH"
    try:
        info = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer in 20 s"
    if info.returncode != 0:
        return f"no container engine answers `docker info`: {info.stderr.strip()[-300:]}"
    return None


def build_image() -> int:
    """Build the image with docker, or say why not and skip (exit 0: nothing was claimed)."""
    problem = engine_problem()
    if problem is not None:
        print(f"image build skipped: {problem}")
        return 0
    tag = image_tag()
    done = subprocess.run(["docker", "build", "-t", tag, str(PROJECT)])
    if done.returncode == 0:
        print(f"built {tag}")
    return done.returncode


def ensure_pools() -> list[str]:
    """Create or update the docker and kubernetes work pools from the templates."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
    from prefect.exceptions import ObjectNotFound

    lines = []
    with get_client(sync_client=True) as client:
        for name, kind in POOLS.items():
            template = load_template(kind)
            try:
                client.read_work_pool(name)
            except ObjectNotFound:
                client.create_work_pool(
                    WorkPoolCreate(name=name, type=kind, base_job_template=template)
                )
                lines.append(f"work pool {name} ({kind}): created")
                continue
            client.update_work_pool(name, WorkPoolUpdate(base_job_template=template))
            lines.append(f"work pool {name} ({kind}): template updated")
    return lines


def main(argv: list[str]) -> int:
    if argv == ["build"]:
        return build_image()
    if argv == ["pools"]:
        print(*ensure_pools(), sep="\n")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
