"""The model registry (MLflow): one client factory, one alias resolver, the champion's move."""

from __future__ import annotations

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from prefect_mlops.errors import RegistryError

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous-champion"


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
    """Point `champion` at `version`, keeping the old champion as `previous-champion`."""
    current = version_by_alias(client, name, CHAMPION)
    if current == version:
        return current
    previous = version_by_alias(client, name, PREVIOUS_CHAMPION)
    if current is not None:
        client.set_registered_model_alias(name, PREVIOUS_CHAMPION, current)
    try:
        client.set_registered_model_alias(name, CHAMPION, version)
    except MlflowException as exc:
        _restore_alias(client, name, PREVIOUS_CHAMPION, previous)
        raise RegistryError(f"cannot move {CHAMPION!r} of {name} to v{version}: {exc}") from exc
    return current


def _restore_alias(client: MlflowClient, name: str, alias: str, version: str | None) -> None:
    if version is None:
        client.delete_registered_model_alias(name, alias)
    else:
        client.set_registered_model_alias(name, alias, version)


def aliases_of(client: MlflowClient, name: str, version: str) -> list[str]:
    """The aliases currently pointing at a version."""
    return sorted(client.get_model_version(name, version).aliases)


def promote_version(client: MlflowClient, name: str, version: str, reason: str) -> list[str]:
    """Make `version` the champion (the old one becomes previous-champion); its aliases now."""
    try:
        client.get_model_version(name, version)
    except MlflowException as exc:
        raise RegistryError(f"{name} has no version {version!r}") from exc
    move_champion(client, name, version)
    client.set_model_version_tag(name, version, "promotion_reason", reason)
    return aliases_of(client, name, version)


def roll_back(client: MlflowClient, name: str) -> tuple[str, list[str]]:
    """Swap `champion` and `previous-champion`; the version now champion and its aliases."""
    previous = version_by_alias(client, name, PREVIOUS_CHAMPION)
    if previous is None:
        raise RegistryError(f"{name} has no {PREVIOUS_CHAMPION!r} alias to roll back to")
    move_champion(client, name, previous)
    return previous, aliases_of(client, name, previous)
