"""Bearer-token authentication of every route but liveness."""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request


async def require_token(request: Request) -> None:
    """401 unless the bearer token matches (when one is configured); the answer says no more."""
    expected: bytes | None = request.app.state.token
    if expected is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), expected):
        raise HTTPException(401, "unauthorized", headers={"WWW-Authenticate": "Bearer"})
