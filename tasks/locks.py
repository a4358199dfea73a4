"""The champion's lock: one Prefect global concurrency limit of one slot per registered model.

Injected into the core's champion moves (prefect_mlops.registry takes any `ChampionLock`), so
training, `mlops promote`, rollback and the recovery pass never move one champion at once, from
any process or host that shares the Prefect server. Without a server, every temporary server of
a machine opens the same PREFECT_HOME database, whose slot counts they share.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress

from prefect import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

from prefect_mlops.errors import RegistryError
from prefect_mlops.registry import ChampionLock
from prefect_mlops.settings import Settings

# One global concurrency limit per registered model, one slot: the champion's lock. Its lease
# outlives a killed holder by at most this long (the server's repossessor frees it).
CHAMPION_LOCK_LEASE_SECONDS = 60.0


def champion_lock_name(model_name: str) -> str:
    """The global concurrency limit that serialises the champion moves of one model."""
    return f"mlops-champion-{model_name}"


def ensure_champion_lock(model_name: str) -> str:
    """Create the model's one-slot concurrency limit on the Prefect server when it is missing."""
    name = champion_lock_name(model_name)
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            # Another process may create it first: then it is the same limit.
            with suppress(ObjectAlreadyExists):
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=1)
                )
    return name


def champion_lock(settings: Settings) -> ChampionLock:
    """The lock the core's champion moves take, bound to these settings' wait bound."""

    @contextmanager
    def hold(model_name: str) -> Iterator[None]:
        name = ensure_champion_lock(model_name)
        with ExitStack() as held:
            try:
                held.enter_context(
                    concurrency(
                        name,
                        occupy=1,
                        timeout_seconds=settings.champion_lock_timeout_seconds,
                        lease_duration=CHAMPION_LOCK_LEASE_SECONDS,
                        strict=True,
                    )
                )
            except TimeoutError as exc:
                raise RegistryError(
                    f"the champion of {model_name} is being moved by another run: concurrency "
                    f"limit {name!r} stayed taken for {settings.champion_lock_timeout_seconds:g} "
                    "s (MLOPS_CHAMPION_LOCK_TIMEOUT_SECONDS); if its holder died, `mlops "
                    "cleanup` or the lease's expiry frees it"
                ) from exc
            yield

    return hold
