"""Reruns: a training run whose snapshot and config already produced a registered version.

Same data (the snapshot's content fingerprint) and same config (its hash) train the same model,
so such a run registers nothing and names the version it matched instead.
"""

from __future__ import annotations

from mlflow.tracking import MlflowClient

from prefect_mlops.results import ModelVersionRef, Snapshot

FINGERPRINT_TAG = "data_fingerprint"
CONFIG_HASH_TAG = "config_hash"


def find_rerun(
    client: MlflowClient, name: str, snapshot: Snapshot, config_hash: str
) -> ModelVersionRef | None:
    """The earliest version of `name` trained on this snapshot with this config, or None."""
    found = client.search_model_versions(
        f"name = '{name}' and tags.{FINGERPRINT_TAG} = '{snapshot.fingerprint}' "
        f"and tags.{CONFIG_HASH_TAG} = '{config_hash}'"
    )
    if not found:
        return None
    first = min(found, key=lambda v: int(v.version))
    return ModelVersionRef(name=name, version=str(first.version), aliases=sorted(first.aliases))


def rerun_reason(matched: ModelVersionRef, snapshot: Snapshot, config_hash: str) -> str:
    """Why nothing was trained or registered, naming the version matched."""
    return (
        f"rerun: snapshot {snapshot.fingerprint} and config {config_hash} already trained "
        f"{matched.name} v{matched.version}; nothing registered"
    )
