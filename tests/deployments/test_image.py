"""The container work-pool templates, checked by Prefect itself; the image build's honesty."""

from __future__ import annotations

import shutil
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.server.schemas.actions import validate_base_job_template
from prefect.utilities.templating import apply_values

from deployments.image import (
    POOLS,
    PROJECT,
    build_image,
    engine_problem,
    ensure_pools,
    image_tag,
    load_template,
)


def defaults(template: dict[str, Any]) -> dict[str, Any]:
    properties = template["variables"]["properties"]
    return {name: spec["default"] for name, spec in properties.items() if "default" in spec}


@pytest.mark.parametrize("kind", ["docker", "kubernetes"])
def test_template_passes_prefects_own_validation(kind: str) -> None:
    template = load_template(kind)
    assert validate_base_job_template(template) == template


def test_docker_template_runs_the_projects_image_by_default() -> None:
    template = load_template("docker")
    job = apply_values(template["job_configuration"], defaults(template))
    assert job["image"] == image_tag() == "prefect-mlops:0.1.0"
    assert job["env"]["DO_NOT_TRACK"] == "true"


def test_kubernetes_job_runs_the_image_with_env_from_a_secret() -> None:
    template = load_template("kubernetes")
    job = apply_values(template["job_configuration"], defaults(template))
    container = job["job_manifest"]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == image_tag()
    assert container["envFrom"] == [{"secretRef": {"name": "mlops-env", "optional": True}}]


def test_pools_are_created_on_a_server_with_the_templates_and_updated_on_rerun() -> None:
    assert ensure_pools() == [f"work pool {name} ({kind}): created" for name, kind in POOLS.items()]
    assert all(line.endswith("template updated") for line in ensure_pools())
    with get_client(sync_client=True) as client:
        for name, kind in POOLS.items():
            pool = client.read_work_pool(name)
            assert pool.type == kind
            assert pool.base_job_template["variables"]["properties"]["image"]["default"] == (
                image_tag()
            )


def test_dockerfile_installs_the_lock_then_the_project_without_deps() -> None:
    text = (PROJECT / "Dockerfile").read_text()
    assert text.splitlines()[4] == "FROM python:3.11-slim"
    assert text.index("pip install -r requirements.lock") < text.index("pip install --no-deps -e .")
    assert ".venv" in (PROJECT / ".dockerignore").read_text().split()


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker CLI")
def test_build_without_an_engine_says_so_and_skips(capsys: pytest.CaptureFixture[str]) -> None:
    if engine_problem() is None:
        pytest.skip("a container engine answers here: the build would really run")
    assert build_image() == 0
    assert capsys.readouterr().out.startswith("image build skipped: ")
