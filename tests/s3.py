"""An S3-compatible server on loopback for tests (moto's, in a thread), and its client set-up."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

# moto accepts any credentials; s3fs and botocore read them from these variables.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass(frozen=True)
class S3Server:
    endpoint: str

    @property
    def storage_options(self) -> dict:
        return {"client_kwargs": {"endpoint_url": self.endpoint}}

    def filesystem(self):
        import s3fs

        return s3fs.S3FileSystem(skip_instance_cache=True, **self.storage_options)

    def new_bucket(self) -> str:
        bucket = f"mlops-{uuid.uuid4().hex[:12]}"
        self.filesystem().mkdir(bucket)
        return bucket

    def environment(self, root: str) -> dict[str, str]:
        """What a process needs to keep its artifacts under `root` on this server."""
        return {
            **CREDENTIALS,
            "MLOPS_ARTIFACT_ROOT": root,
            "MLOPS_ARTIFACT_STORAGE_OPTIONS": json.dumps(self.storage_options),
        }


@contextmanager
def moto_s3() -> Iterator[S3Server]:
    """moto's S3 API on 127.0.0.1 at a free port, for the block."""
    from moto.server import ThreadedMotoServer

    with pytest.MonkeyPatch.context() as patch:
        for key, value in CREDENTIALS.items():
            patch.setenv(key, value)
        # werkzeug logs every request at INFO: a failing test's output would be mostly that
        patch.setattr(logging.getLogger("werkzeug"), "level", logging.WARNING)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            yield S3Server(endpoint=f"http://{host}:{port}")
        finally:
            server.stop()
