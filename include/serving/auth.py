"""Bearer-token auth: the check every route under /v1 makes first (`include.serving.routes.TokenFirst`)."""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request, status
from fastapi.security import HTTPBearer

# Declared on the routers for the OpenAPI document; it refuses nothing itself (`require_token` does).
bearer = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="The `platform_serving` connection's password, or PLATFORM_SERVING_TOKEN.",
)
CHALLENGE = {"WWW-Authenticate": "Bearer"}


async def require_token(request: Request) -> None:
    """Let the request through only with `Authorization: Bearer <the service's token>` (else 401)."""
    credentials = await bearer(request)
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing bearer token: send `Authorization: Bearer <token>`",
            headers=CHALLENGE,
        )
    expected: bytes = request.app.state.token
    if not hmac.compare_digest(credentials.credentials.encode(), expected):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid bearer token", headers=CHALLENGE)
