"""Bearer-token authentication of every route but liveness, and where the token comes from."""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request

from prefect_mlops.errors import ConfigError
from serving.settings import ServeSettings


async def require_token(request: Request) -> None:
    """401 unless the bearer token matches (when one is configured); the answer says no more."""
    expected: bytes | None = request.app.state.token
    if expected is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), expected):
        raise HTTPException(401, "unauthorized", headers={"WWW-Authenticate": "Bearer"})


async def resolve_token(settings: ServeSettings) -> bytes | None:
    """The bearer token from the environment, or else from a Prefect Secret block."""
    if settings.token is not None:
        return settings.token.get_secret_value().encode()
    if settings.token_secret_block:
        from prefect.blocks.system import Secret  # only services configured with a block pay it

        try:
            secret: Secret[str] = await Secret.aload(settings.token_secret_block)
        except ValueError as exc:  # fail closed, naming the setting: never serve without auth
            raise ConfigError(
                f"MLOPS_SERVE_TOKEN_SECRET_BLOCK: Prefect Secret block "
                f"{settings.token_secret_block!r} cannot be loaded: {exc}"
            ) from exc
        return str(secret.get()).encode()
    return None
