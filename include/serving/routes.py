"""The route class of every route behind the token: the token first, and a body that cannot be read as
JSON text answered as any other bad body.

FastAPI reads and decodes a route's body before it runs the route's dependencies, so a token
checked by a dependency comes after the body's problems: a malformed body without a token would get
422 (or 400) before 401, and an anonymous client could learn how the body is checked. `TokenFirst`
checks the token before anything of the request is read: without the token every route under /v1
answers 401 and nothing else (only a declared Content-Length over the body limit is refused first,
with 413, since then nothing is read at all).

FastAPI answers a body that is not UTF-8, or nests deeper than Python's JSON parser goes, with a
bare `400 There was an error parsing the body`. The service answers both as it answers malformed
JSON: 422, `{"detail": ..., "errors": [{"type": "json_invalid" | "json_too_deep", ...}]}`, naming
the byte or the nesting. The same status for every body the service cannot use means a client
handles one answer for "fix the body", and the body names what to fix.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException  # what FastAPI raises for a body (fastapi's is a subclass)

from include.serving.auth import require_token


class TokenFirst(APIRoute):
    """A route that checks the bearer token before FastAPI reads the body, and that answers a body
    FastAPI cannot decode with 422, naming why."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handle = super().get_route_handler()

        async def token_first(request: Request) -> Response:
            await require_token(request)
            try:
                return await handle(request)
            except HTTPException as refused:
                undecodable = _undecodable(refused)
                if undecodable is None:
                    raise
                raise undecodable from refused

        return token_first


def _undecodable(refused: HTTPException) -> RequestValidationError | None:
    """The 422 for FastAPI's 400 on a body it could not decode (its cause says why); None otherwise."""
    cause = refused.__cause__
    if refused.status_code != status.HTTP_400_BAD_REQUEST:
        return None
    if isinstance(cause, UnicodeDecodeError):
        byte = cause.object[cause.start : cause.start + 1].hex()
        why = f"not UTF-8 text, as JSON must be: byte 0x{byte} at position {cause.start}"
        error = {"type": "json_invalid", "loc": ("body", cause.start), "msg": why, "ctx": {"error": why}}
    elif isinstance(cause, RecursionError):
        error = {
            "type": "json_too_deep",
            "loc": ("body",),
            "msg": 'the body nests arrays or objects too deeply to read; a request is {"rows": [{...}]}',
        }
    else:
        return None
    return RequestValidationError([{**error, "input": None}])
