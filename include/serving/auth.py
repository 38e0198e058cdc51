"""Bearer-token auth, a dependency declared once on each router that scores or describes models."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import HTTPException, Request, Security, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="The `platform_serving` connection's password, or PLATFORM_SERVING_TOKEN.",
)
CHALLENGE = {"WWW-Authenticate": "Bearer"}


async def require_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]
) -> None:
    """Let the request through only with `Authorization: Bearer <the service's token>` (else 401)."""
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing bearer token: send `Authorization: Bearer <token>`",
            headers=CHALLENGE,
        )
    expected: bytes = request.app.state.token
    if not hmac.compare_digest(credentials.credentials.encode(), expected):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid bearer token", headers=CHALLENGE)
