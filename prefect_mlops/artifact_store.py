"""The artifact store: every artifact named by a URI under one root, a local folder or object
storage reached through fsspec (`s3://`, `gs://`, `abfs://`, ...).

A local root's URIs are plain absolute paths (what lineage tags have always held); an object
store's are its URLs. Writers prepare a file on local disk and publish it whole: on a local root
it is written in place (temp file in the same folder, then `os.replace`), on an object store one
whole-object upload puts it at its final key only once its content is complete (S3, GCS and Azure
commit an object, multipart or not, only when the upload completes; other fsspec stores get a
temporary key moved into place). A root on the MLflow server's proxied artifact store
(`mlflow-artifacts:/prefix`) goes through MLflow's own artifact client with the settings'
tracking URI: no store credentials on the client, the server writes to its destination. Readers
of immutable, content-addressed objects (snapshots,
splits) get a local file: a local URI is its own path, a remote one is downloaded once into the
read-through cache, where pandas, pyarrow and Great Expectations read it. A URI that is not there
is an `ArtifactNotFoundError` naming it.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import fsspec

from prefect_mlops.errors import ArtifactNotFoundError, ArtifactStoreError
from prefect_mlops.results import Snapshot

# Stores that make an object visible only when its upload completes: a put to the final key is
# already atomic there, and a rename would be a second whole copy.
WHOLE_OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "abfs", "abfss", "az", "adl", "memory"})
COPY_CHUNK_BYTES = 1 << 20
# Folders under the root.
SNAPSHOTS = "snapshots"
SPLITS = "splits"
# The MLflow server's proxied artifact store: reached through MLflow's client, not fsspec.
MLFLOW_ARTIFACTS = "mlflow-artifacts"
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:/")


def is_remote(uri: str) -> bool:
    """True for a URL of a store other than the local filesystem (`file://` is local)."""
    return bool(_URL.match(uri)) and not uri.startswith("file:")


def _scheme(uri: str) -> str:
    return urlparse(uri).scheme


def normalize_root(root: str | os.PathLike[str]) -> str:
    """An artifact root as its store names it: a URL without its trailing slash, or an absolute
    local path (`~` expanded, `file://` turned into its path)."""
    text = os.fspath(root)
    if is_remote(text):
        return text.rstrip("/")
    if text.startswith("file:"):
        text = url2pathname(urlparse(text).path)
    return str(Path(text).expanduser().absolute())


@dataclass(frozen=True)
class ArtifactStore:
    """Artifacts under `root`; remote objects read through `cache_dir`.

    Args:
        root: an absolute local path or a store URL (see `normalize_root`).
        cache_dir: where downloaded objects are kept, by scheme, bucket and key.
        storage_options: fsspec arguments for the root's protocol (an endpoint, a region); keys
            and secrets come from the store's usual environment variables, never from here.
        tracking_uri: the MLflow server of an `mlflow-artifacts:` root.
    """

    root: str
    cache_dir: Path
    storage_options: Mapping[str, Any] = field(default_factory=dict)
    tracking_uri: str | None = None

    @property
    def is_local(self) -> bool:
        """True when the root is a folder of this host's filesystem."""
        return not is_remote(self.root)

    def uri(self, *parts: str) -> str:
        """The URI of `parts` (path segments) under the root."""
        if self.is_local:
            return str(Path(self.root).joinpath(*parts))
        return "/".join([self.root, *(p.strip("/") for p in parts)])

    def local_path(self, uri: str) -> Path:
        """Where `uri`'s bytes sit on this host: a local URI's own path, a remote URI's place in
        the cache (written by a writer before it publishes, or by `localize`)."""
        if not is_remote(uri):
            return Path(normalize_root(uri))
        parsed = urlparse(uri)
        return self.cache_dir / parsed.scheme / parsed.netloc / parsed.path.lstrip("/")

    def exists(self, uri: str) -> bool:
        """True when `uri` names an object (or file) in its store."""
        if not is_remote(uri):
            return self.local_path(uri).is_file()
        if _scheme(uri) == MLFLOW_ARTIFACTS:
            return self._mlflow_exists(uri)
        fs, path = self._filesystem(uri)
        try:
            fs.invalidate_cache(path)  # another host may have written it since a listing
            return bool(fs.isfile(path))
        except OSError as error:
            raise ArtifactStoreError(f"cannot reach artifact {uri}: {error}") from error

    def localize(self, uri: str) -> Path:
        """A local file holding `uri`'s bytes, downloaded once into the cache for a remote URI.

        Only for immutable objects (content-addressed snapshots and splits): a cached copy is
        never checked against the store again.
        """
        path = self.local_path(uri)
        if path.is_file():
            return path
        if not is_remote(uri):
            raise ArtifactNotFoundError(f"artifact {uri} is missing (no such file)")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".download")
        os.close(fd)
        try:
            self._get(uri, tmp)
            os.replace(tmp, path)
        except FileNotFoundError as error:
            raise ArtifactNotFoundError(f"artifact {uri} is missing from its store") from error
        except OSError as error:
            raise ArtifactStoreError(f"cannot read artifact {uri}: {error}") from error
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return path

    def read_bytes(self, uri: str) -> bytes:
        """The content of `uri` (read from the store every time, not cached)."""
        if not is_remote(uri):
            try:
                return self.local_path(uri).read_bytes()
            except FileNotFoundError as error:
                raise ArtifactNotFoundError(f"artifact {uri} is missing (no such file)") from error
        with tempfile.TemporaryDirectory() as folder:
            target = Path(folder) / "content"
            try:
                self._get(uri, str(target))
            except FileNotFoundError as error:
                raise ArtifactNotFoundError(f"artifact {uri} is missing from its store") from error
            except OSError as error:
                raise ArtifactStoreError(f"cannot read artifact {uri}: {error}") from error
            return target.read_bytes()

    def publish(self, uri: str, source: Path | None = None) -> str:
        """Put a complete local file (`source`, by default `local_path(uri)`, where writers
        stage it) at `uri` in its store; `uri`.

        On a local root the staged file is already in place (another `source` is copied in
        atomically). An object that exists is not uploaded again: callers publish
        content-addressed names only.
        """
        staged = self.local_path(uri)
        source = source or staged
        if not source.is_file():
            raise ArtifactNotFoundError(f"no local file {source} to publish as {uri}")
        if not is_remote(uri):
            if source != staged:
                with self.open_write(uri) as out, source.open("rb") as data:
                    shutil.copyfileobj(data, out, COPY_CHUNK_BYTES)
            return uri
        if not self.exists(uri):
            self._put(source, uri)
        return uri

    def write_bytes(self, uri: str, data: bytes) -> str:
        """Write `data` at `uri` atomically (see `open_write`); `uri`."""
        with self.open_write(uri) as out:
            out.write(data)
        return uri

    @contextmanager
    def open_write(self, uri: str) -> Iterator[IO[bytes]]:
        """A binary file to write `uri`'s content to: it becomes `uri` only when the block ends
        without an exception; otherwise nothing is left at `uri` (nor a partial object)."""
        target = self.local_path(uri) if not is_remote(uri) else None
        folder = target.parent if target is not None else None
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                yield out
            if target is not None:
                os.replace(tmp, target)
            else:
                self._put(Path(tmp), uri)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    def _put(self, source: Path, uri: str) -> None:
        """Upload a complete local file to `uri`: one whole-object put on an object store,
        a temporary key then a move elsewhere."""
        if _scheme(uri) == MLFLOW_ARTIFACTS:
            self._mlflow_put(source, uri)
            return
        fs, path = self._filesystem(uri)
        try:
            if urlparse(uri).scheme in WHOLE_OBJECT_STORES:
                fs.put_file(str(source), path)
                return
            temporary = f"{path}.{uuid.uuid4().hex}.tmp"
            fs.put_file(str(source), temporary)
            fs.mv(temporary, path)
        except OSError as error:
            raise ArtifactStoreError(f"cannot write artifact {uri}: {error}") from error

    def _get(self, uri: str, target: str) -> None:
        """Download `uri` to the local file `target` (FileNotFoundError when it is not there)."""
        if _scheme(uri) == MLFLOW_ARTIFACTS:
            if not self._mlflow_exists(uri):
                raise FileNotFoundError(uri)
            repo, name = self._mlflow_repository(uri)
            with tempfile.TemporaryDirectory(dir=Path(target).parent) as folder:
                os.replace(repo.download_artifacts(name, dst_path=folder), target)
            return
        fs, remote = self._filesystem(uri)
        fs.get_file(remote, target)

    def _mlflow_repository(self, uri: str) -> tuple[Any, str]:
        """MLflow's artifact client for the folder of `uri`, and the file's name in it."""
        from mlflow.exceptions import MlflowException
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        folder, _, name = uri.rpartition("/")
        try:
            return get_artifact_repository(folder, tracking_uri=self.tracking_uri), name
        except MlflowException as error:  # e.g. a tracking URI that is not the server
            raise ArtifactStoreError(f"cannot reach artifact {uri}: {error}") from error

    def _mlflow_exists(self, uri: str) -> bool:
        from mlflow.exceptions import MlflowException

        repo, name = self._mlflow_repository(uri)
        try:
            listed = repo.list_artifacts()
        except (MlflowException, OSError) as error:
            raise ArtifactStoreError(f"cannot reach artifact {uri}: {error}") from error
        return any(not f.is_dir and f.path.rsplit("/", 1)[-1] == name for f in listed)

    def _mlflow_put(self, source: Path, uri: str) -> None:
        """One upload of the complete file through the MLflow server (which writes it to its
        artifacts destination); the file is sent under its final name."""
        from mlflow.exceptions import MlflowException

        repo, name = self._mlflow_repository(uri)
        with tempfile.TemporaryDirectory() as folder:
            named = source
            if source.name != name:
                named = Path(folder) / name
                shutil.copyfile(source, named)
            try:
                repo.log_artifact(str(named))
            except (MlflowException, OSError) as error:
                raise ArtifactStoreError(f"cannot write artifact {uri}: {error}") from error

    def _filesystem(self, uri: str) -> tuple[Any, str]:
        """The fsspec filesystem of `uri` (with the root's options when it shares its protocol)
        and the path within it."""
        same = urlparse(uri).scheme == urlparse(self.root).scheme
        options = dict(self.storage_options) if same else {}
        try:
            return fsspec.core.url_to_fs(uri, **options)
        except (ImportError, ValueError) as error:
            raise ArtifactStoreError(
                f"no filesystem for artifact {uri}: {error} (an s3:// root needs the `s3` extra)"
            ) from error


def root_problems(root: str, tracking_uri: str | None = None) -> list[str]:
    """What stops `root` from being used, found without reaching it: a URL whose protocol has no
    fsspec filesystem installed (s3:// without s3fs, say), or an `mlflow-artifacts:` root without
    an MLflow server as the tracking URI."""
    if not is_remote(root):
        return []
    protocol = urlparse(root).scheme
    if protocol == MLFLOW_ARTIFACTS:
        if (tracking_uri or "").startswith(("http://", "https://")):
            return []
        return [
            f"artifact root {root}: the MLflow server's proxied store needs MLFLOW_TRACKING_URI "
            f"to be that server (http://...), not {tracking_uri}"
        ]
    try:
        fsspec.get_filesystem_class(protocol)
    except (ImportError, ValueError) as error:
        return [f"artifact root {root}: no filesystem for {protocol}:// ({error})"]
    return []


def local_file(uri: str, store: ArtifactStore | None = None) -> str:
    """The local path of an immutable artifact (snapshot, split) for pandas and pyarrow, through
    `store`, else the store of this process's environment (`MLOPS_ARTIFACT_*`)."""
    if store is None:
        from prefect_mlops.settings import Settings  # settings build stores: import when needed

        store = Settings().artifact_store()
    return str(store.localize(uri))


def publish_snapshot(snapshot: Snapshot, store: ArtifactStore) -> Snapshot:
    """The snapshot put under the root's `snapshots` folder (by its file name, the fingerprint),
    named there by its URI: what lineage tags record and every later reader resolves."""
    local = Path(snapshot.uri)
    uri = store.publish(store.uri(SNAPSHOTS, local.name), local)
    return snapshot.model_copy(update={"uri": uri})
