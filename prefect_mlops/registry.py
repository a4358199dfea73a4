"""The model registry (MLflow): one client factory, one alias resolver, the champion's move.

Every move of `champion` happens under a lock the caller injects (tasks/ pass a Prefect global
concurrency limit; the core knows no Prefect) and is journalled on the registered model first,
so a process killed half-way leaves a move that `complete_champion_move` finishes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from prefect_mlops.errors import RegistryError

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous-champion"
# On a version: the alias its run is about to set (removed once set). A version still carrying
# it after its run died never got its alias and is deleted by the recovery pass.
PENDING_ALIAS_TAG = "mlops.pending_alias"
# On a registered model: the champion move in progress, {"from": old or null, "to": new}.
CHAMPION_MOVE_TAG = "mlops.champion_move"

# The lock of one model's champion: `with lock(name): ...` holds it for every process and host.
ChampionLock = Callable[[str], AbstractContextManager[object]]


def unlocked(name: str) -> AbstractContextManager[object]:
    """No lock: for one process that owns its store alone (a test, a notebook)."""
    return nullcontext()


def registry_client(tracking_uri: str, registry_uri: str | None = None) -> MlflowClient:
    """A client bound to these stores (never MLflow's process-wide default)."""
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri)


def find_version(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version `alias` points at now, or None when the model or the alias does not exist."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST" or "not found" in str(exc).lower():
            return None
        raise


def version_by_alias(client: MlflowClient, name: str, alias: str) -> str | None:
    """The version number `alias` points at now, or None."""
    version = find_version(client, name, alias)
    return None if version is None else str(version.version)


def require_version(client: MlflowClient, name: str, alias: str) -> ModelVersion:
    """The version `alias` points at; a RegistryError naming model and alias when there is none."""
    version = find_version(client, name, alias)
    if version is None:
        raise RegistryError(f"registered model {name!r} has no alias {alias!r}")
    return version


def move_champion(client: MlflowClient, name: str, version: str) -> str | None:
    """Point `champion` at `version`, keeping the old champion as `previous-champion`.

    Call it under the model's lock. The move is written to the registered model's
    `mlops.champion_move` tag before either alias changes and cleared after both did.
    """
    current = version_by_alias(client, name, CHAMPION)
    if current == version:
        return current
    move = json.dumps({"from": current, "to": version})
    client.set_registered_model_tag(name, CHAMPION_MOVE_TAG, move)
    previous = version_by_alias(client, name, PREVIOUS_CHAMPION)
    if current is not None:
        client.set_registered_model_alias(name, PREVIOUS_CHAMPION, current)
    try:
        client.set_registered_model_alias(name, CHAMPION, version)
    except MlflowException as exc:
        _restore_alias(client, name, PREVIOUS_CHAMPION, previous)
        client.delete_registered_model_tag(name, CHAMPION_MOVE_TAG)
        raise RegistryError(f"cannot move {CHAMPION!r} of {name} to v{version}: {exc}") from exc
    client.delete_registered_model_tag(name, CHAMPION_MOVE_TAG)
    return current


def complete_champion_move(client: MlflowClient, name: str) -> str | None:
    """Finish a champion move a dead process left journalled; the version now champion, if any.

    Call it under the model's lock (so no live process is in the middle of that move).
    """
    raw = client.get_registered_model(name).tags.get(CHAMPION_MOVE_TAG)
    if raw is None:
        return None
    move = json.loads(raw)
    if move["from"] is not None:
        client.set_registered_model_alias(name, PREVIOUS_CHAMPION, move["from"])
    client.set_registered_model_alias(name, CHAMPION, move["to"])
    client.delete_registered_model_tag(name, CHAMPION_MOVE_TAG)
    return str(move["to"])


def _restore_alias(client: MlflowClient, name: str, alias: str, version: str | None) -> None:
    if version is None:
        client.delete_registered_model_alias(name, alias)
    else:
        client.set_registered_model_alias(name, alias, version)


def aliases_of(client: MlflowClient, name: str, version: str) -> list[str]:
    """The aliases currently pointing at a version."""
    return sorted(client.get_model_version(name, version).aliases)


def promote_version(
    client: MlflowClient, name: str, version: str, reason: str, lock: ChampionLock
) -> list[str]:
    """Make `version` the champion (the old one becomes previous-champion); its aliases now."""
    try:
        client.get_model_version(name, version)
    except MlflowException as exc:
        raise RegistryError(f"{name} has no version {version!r}") from exc
    with lock(name):
        move_champion(client, name, version)
    client.set_model_version_tag(name, version, "promotion_reason", reason)
    return aliases_of(client, name, version)


def promote_if_still_better(
    client: MlflowClient,
    name: str,
    version: str,
    decided_against: str | None,
    redecide: Callable[[str | None], bool],
    lock: ChampionLock,
) -> bool:
    """Move the champion to `version` under the lock, re-deciding when it moved meanwhile.

    `decided_against` is the champion the decision compared with. Inside the lock the champion
    is read again; when another run moved it, `redecide(new_champion)` says whether `version`
    still wins. True when `version` is champion afterwards.
    """
    with lock(name):
        current = version_by_alias(client, name, CHAMPION)
        if current == version:
            return True
        if current != decided_against and not redecide(current):
            return False
        move_champion(client, name, version)
    return True


def roll_back(client: MlflowClient, name: str, lock: ChampionLock) -> tuple[str, list[str]]:
    """Swap `champion` and `previous-champion`; the version now champion and its aliases."""
    with lock(name):
        previous = version_by_alias(client, name, PREVIOUS_CHAMPION)
        if previous is None:
            raise RegistryError(f"{name} has no {PREVIOUS_CHAMPION!r} alias to roll back to")
        move_champion(client, name, previous)
    return previous, aliases_of(client, name, previous)
