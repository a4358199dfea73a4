"""The artifact root on the MLflow server's proxied artifact store (`mlflow-artifacts:/...`):
the stack's MLflow server (`--serve-artifacts`) holds snapshots and splits by URI, and a host with
an empty cache reads them back through it; the client needs no store credentials."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from prefect_mlops.errors import ArtifactNotFoundError
from prefect_mlops.settings import Settings
from tests.system.conftest import Stack

pytestmark = pytest.mark.system


class Interrupted(Exception):
    """A writer that fails half-way."""


def host_settings(stack: Stack, root: str, folder: Path) -> Settings:
    return Settings(
        MLFLOW_TRACKING_URI=stack.env["MLFLOW_TRACKING_URI"],
        artifact_root=root,
        local_artifact_root=folder,
    )


def test_the_mlflow_servers_proxied_store_keeps_artifacts_by_uri(
    stack: Stack, tmp_path: Path
) -> None:
    prefix = f"store-test-{uuid.uuid4().hex[:8]}"
    root = f"mlflow-artifacts:/{prefix}"
    store = host_settings(stack, root, tmp_path / "host-a").artifact_store()
    uri = store.uri("snapshots", "f00d.parquet")
    with pytest.raises(ArtifactNotFoundError, match=re.escape(f"artifact {uri} is missing")):
        store.localize(uri)
    half = store.uri("splits", "abc", "train.parquet")
    with pytest.raises(Interrupted), store.open_write(half) as out:
        out.write(b"x" * 100_000)
        raise Interrupted
    assert not store.exists(half)
    store.write_bytes(uri, b"snapshot bytes")
    served = stack.settings.dir / "mlartifacts" / prefix / "snapshots" / "f00d.parquet"
    assert served.read_bytes() == b"snapshot bytes"  # written by the server, not the client
    other = host_settings(stack, root, tmp_path / "host-b").artifact_store()
    local = other.localize(uri)
    assert local.is_relative_to(tmp_path / "host-b") and local.read_bytes() == b"snapshot bytes"
