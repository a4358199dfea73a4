"""The artifact store on a local folder and on an S3 API (moto on loopback) through fsspec."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from prefect_mlops.artifact_store import ArtifactStore, publish_snapshot
from prefect_mlops.errors import ArtifactNotFoundError
from prefect_mlops.lineage import dataset_source
from prefect_mlops.results import Snapshot
from prefect_mlops.settings import Settings
from tests.s3 import S3Server, moto_s3


class Interrupted(Exception):
    """A writer that fails half-way."""


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with moto_s3() as server:
        yield server


@pytest.fixture
def s3_store(s3: S3Server, tmp_path: Path) -> ArtifactStore:
    root = f"s3://{s3.new_bucket()}/team/artifacts"
    return ArtifactStore(root, tmp_path / "cache", s3.storage_options)


@pytest.fixture
def local_store(tmp_path: Path) -> ArtifactStore:
    return Settings(artifact_root=tmp_path / "root").artifact_store()


def test_local_uris_are_absolute_paths_under_the_root(
    local_store: ArtifactStore, tmp_path: Path
) -> None:
    uri = local_store.uri("splits", "abc", "train.parquet")
    assert uri == str(tmp_path / "root" / "splits" / "abc" / "train.parquet")
    local_store.write_bytes(uri, b"rows")
    assert local_store.exists(uri)
    assert local_store.localize(uri) == Path(uri)  # no copy of a local file
    assert local_store.read_bytes(uri) == b"rows"


def test_a_failed_local_write_leaves_neither_file_nor_temporary(
    local_store: ArtifactStore,
) -> None:
    uri = local_store.uri("snapshots", "x.parquet")
    with pytest.raises(Interrupted), local_store.open_write(uri) as out:
        out.write(b"half a file")
        raise Interrupted
    assert not local_store.exists(uri)
    assert list(Path(uri).parent.iterdir()) == []


def test_a_missing_local_artifact_is_named(local_store: ArtifactStore) -> None:
    uri = local_store.uri("snapshots", "gone.parquet")
    with pytest.raises(ArtifactNotFoundError, match=re.escape(f"artifact {uri} is missing")):
        local_store.localize(uri)
    with pytest.raises(FileNotFoundError, match=r"gone\.parquet"):  # still a FileNotFoundError
        local_store.read_bytes(uri)


def test_s3_objects_are_written_read_and_cached_by_uri(
    s3_store: ArtifactStore, s3: S3Server, tmp_path: Path
) -> None:
    uri = s3_store.uri("snapshots", "f00d.parquet")
    assert uri == f"{s3_store.root}/snapshots/f00d.parquet"
    s3_store.write_bytes(uri, b"snapshot bytes")
    assert s3.filesystem().cat_file(uri.removeprefix("s3://")) == b"snapshot bytes"
    assert s3_store.exists(uri)
    local = s3_store.localize(uri)
    assert (
        local.is_relative_to(tmp_path / "cache" / "s3") and local.read_bytes() == b"snapshot bytes"
    )
    s3.filesystem().rm_file(uri.removeprefix("s3://"))
    assert s3_store.localize(uri) == local  # immutable: the cached copy answers


def test_a_failed_s3_write_leaves_no_object(s3_store: ArtifactStore, s3: S3Server) -> None:
    uri = s3_store.uri("splits", "abc", "train.parquet")
    with pytest.raises(Interrupted), s3_store.open_write(uri) as out:
        out.write(b"x" * 1_000_000)
        raise Interrupted
    assert not s3_store.exists(uri)
    assert s3.filesystem().find(s3_store.root.removeprefix("s3://")) == []


def test_a_missing_s3_artifact_is_named(s3_store: ArtifactStore) -> None:
    uri = s3_store.uri("snapshots", "never-written.parquet")
    named = re.escape(f"artifact {uri} is missing from its store")
    with pytest.raises(ArtifactNotFoundError, match=named):
        s3_store.localize(uri)
    with pytest.raises(ArtifactNotFoundError, match=r"never-written\.parquet"):
        s3_store.read_bytes(uri)
    assert not s3_store.local_path(uri).exists()  # no empty file left in the cache


def test_a_snapshot_written_on_this_host_is_published_under_the_root(
    s3_store: ArtifactStore, s3: S3Server
) -> None:
    staged = s3_store.local_path(s3_store.uri("snapshots", "c0ffee.parquet"))
    staged.parent.mkdir(parents=True)
    staged.write_bytes(b"parquet")
    snapshot = Snapshot(uri=str(staged), fingerprint="c0ffee", rows=1, columns=["a"], source="t")
    stored = publish_snapshot(snapshot, s3_store)
    assert stored.uri == f"{s3_store.root}/snapshots/c0ffee.parquet"
    assert stored.model_copy(update={"uri": snapshot.uri}) == snapshot
    assert s3.filesystem().cat_file(stored.uri.removeprefix("s3://")) == b"parquet"


def test_settings_take_an_s3_root_and_its_options_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    options = {"client_kwargs": {"endpoint_url": "http://127.0.0.1:9"}}
    monkeypatch.setenv("MLOPS_ARTIFACT_ROOT", "s3://bucket/prefix/")
    monkeypatch.setenv("MLOPS_ARTIFACT_STORAGE_OPTIONS", json.dumps(options))
    monkeypatch.setenv("MLOPS_LOCAL_ARTIFACT_ROOT", "here")
    settings = Settings()
    store = settings.artifact_store()
    assert (store.root, dict(store.storage_options)) == ("s3://bucket/prefix", options)
    assert settings.local_root == tmp_path / "here"
    assert (
        settings.snapshot_dir
        == tmp_path / "here" / "cache" / "s3" / "bucket" / "prefix" / "snapshots"
    )
    assert settings.prediction_log_dir == tmp_path / "here" / "prediction_log"  # local only


def test_a_local_root_keeps_recording_absolute_paths(local_store: ArtifactStore) -> None:
    path = Path(local_store.uri("snapshots", "abc.parquet"))
    path.parent.mkdir(parents=True)
    path.write_bytes(b"parquet")
    snapshot = Snapshot(uri=str(path), fingerprint="abc", rows=1, columns=["a"], source="t")
    assert publish_snapshot(snapshot, local_store) == snapshot  # no file:// and no copy


def test_a_file_url_root_is_a_local_path(tmp_path: Path) -> None:
    settings = Settings(artifact_root=(tmp_path / "r").as_uri())
    assert settings.artifact_root == str(tmp_path / "r") and settings.local_root == tmp_path / "r"


def test_artifacts_are_mlflow_dataset_sources_by_their_uri(s3_store: ArtifactStore) -> None:
    proxied = "mlflow-artifacts:/team/splits/abc/holdout.parquet"
    assert dataset_source(proxied).to_dict() == {"uri": proxied}  # MLflow registers none
    on_s3 = s3_store.uri("splits", "abc", "holdout.parquet")
    assert dataset_source(on_s3).to_dict() == {"uri": on_s3}
