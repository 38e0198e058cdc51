"""The scoring service's FastAPI app: routers, the body-size limit, and the error answers.

    uvicorn --factory include.serving.app:app_from_env     # or: python -m include.serving

Errors: 401 (no or bad bearer token, checked before the body is read), 404 (unknown use case), 413
(body over the limit), 422 (a bad row, naming the row and the field; or a body that is not JSON the
service can read, naming why), 503 (no model to serve, with the reason). None of them carries a
score.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from include.serving.api import Scoring, health_router, models_router, scoring_router
from include.serving.service import NotServing, ScoringService, UnknownUseCase
from include.serving.settings import ServingSettings

log = logging.getLogger(__name__)


class BodyLimit:
    """Refuse a request body over `max_bytes` with 413: by its Content-Length, or as it streams in."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await JSONResponse({"detail": self._detail()}, status.HTTP_413_CONTENT_TOO_LARGE)(
                scope, receive, send
            )
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:  # no (or a false) Content-Length
                raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, self._detail())
            return message

        await self.app(scope, counted, send)

    def _detail(self) -> str:
        return f"request body over the limit of {self.max_bytes} bytes"


class ScoreLane:
    """The scoring routes' fast lane: a request their route would answer 200 is answered here, the
    same answer in the same bytes, without FastAPI's dispatch (about 90 of the 140 µs the app spent
    on a one-row request here, docs/serving.md#speed); every other request goes to the app as it came.

    The lane takes a `POST` to a scoring route whose first `Authorization` header is exactly
    `Bearer <token>`, whose `Content-Type` is `application/json` and whose declared `Content-Length`
    is within the limit. It reads the body and asks `Scoring.answer_body` for the answer; for a body
    the route would refuse, or with no model to serve, the app gets the request, the body replayed,
    and answers it (401, 413, 422, 503 and their bodies are the app's alone).
    """

    def __init__(self, app: ASGIApp, scorings: Sequence[Scoring], token: str, max_bytes: int) -> None:
        self.app = app
        self.routes = {f"/v1/{scoring.name}/score": scoring for scoring in scorings}
        try:  # a header is Latin-1 text, as Starlette reads it
            self.authorization: bytes | None = f"Bearer {token}".encode("latin-1")
        except UnicodeEncodeError:  # no header carries this token: the app answers (401)
            self.authorization = None
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scoring = self.routes.get(scope["path"]) if scope["type"] == "http" else None
        body = await self._body(scope, receive) if scoring and scope["method"] == "POST" else None
        answer = scoring.answer_body(body) if scoring and body is not None else None
        if answer is None:
            await self.app(scope, receive if body is None else _replay(body, receive), send)
            return
        headers = [(b"content-length", str(len(answer)).encode()), (b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    async def _body(self, scope: Scope, receive: Receive) -> bytes | None:
        """The body of a request the lane may take; None, with nothing read, for any other."""
        first: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            first.setdefault(name, value)  # the first of each, as Starlette reads them
        declared = first.get(b"content-length", b"")
        if not (
            self.authorization is not None
            and hmac.compare_digest(first.get(b"authorization", b""), self.authorization)
            and first.get(b"content-type") == b"application/json"
            and declared.isdigit()
            and int(declared) <= self.max_bytes
        ):
            return None
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """`receive`, giving the body already read first."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


def field_problems(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """pydantic's errors as (row, field, message, type): `("body", "rows", 3, "tenure")` is row 3, tenure."""
    problems = []
    for error in errors:
        loc = list(error.get("loc", ()))
        if loc[:1] == ["body"]:
            loc = loc[1:]
        row = None
        if len(loc) >= 2 and loc[0] == "rows" and isinstance(loc[1], int):
            row, loc = loc[1], loc[2:]
        field = ".".join(str(part) for part in loc) if loc else None  # an unknown key may be ""
        kind = error.get("type", "value_error")
        message = {
            "missing": "missing field",
            "extra_forbidden": "unknown field: not a feature of this use case",
            "json_invalid": f"the body is not valid JSON: {error.get('ctx', {}).get('error', '')}".strip(),
        }.get(kind, error.get("msg", "invalid"))
        if kind == "json_invalid":
            field = None
        elif row is None and field is None and kind in ("model_attributes_type", "model_type"):
            message = 'the body must be a JSON object {"rows": [...]}, sent as application/json'

        problems.append({"row": row, "field": field, "message": message, "type": kind})
    return problems


def _summary(problems: list[dict[str, Any]]) -> str:
    parts = []
    for p in problems[:5]:
        where = ", ".join(
            x
            for x in (
                f"row {p['row']}" if p["row"] is not None else "",
                repr(p["field"]) if p["field"] is not None else "",
            )
            if x
        )
        parts.append(f"{where}: {p['message']}" if where else p["message"])
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    return f"{len(problems)} problem(s), nothing scored: " + "; ".join(parts) + more


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = field_problems(list(exc.errors()))
        return JSONResponse(
            {"detail": _summary(problems), "errors": problems}, status.HTTP_422_UNPROCESSABLE_CONTENT
        )

    @app.exception_handler(UnknownUseCase)
    async def unknown(request: Request, exc: UnknownUseCase) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status.HTTP_404_NOT_FOUND)

    @app.exception_handler(NotServing)
    async def not_serving(request: Request, exc: NotServing) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status.HTTP_503_SERVICE_UNAVAILABLE, {"Retry-After": "30"})


def create_app(service: ScoringService, token: str, settings: ServingSettings) -> FastAPI:
    """The app serving `service`'s use cases; it starts following the champions when it starts."""
    if not token:
        raise ValueError("a bearer token is required: the service does not score anonymously")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from threadpoolctl import threadpool_limits

        # Requests are a few rows each: BLAS and OpenMP threads would only add start-up and spin time.
        threadpool_limits(limits=1)
        await run_in_threadpool(service.start)
        yield
        await run_in_threadpool(service.stop)

    app = FastAPI(
        title="ML platform: real-time scoring",
        description="The registry's champion of each use case, scored as the nightly batch scores it. "
        "Every route under /v1 needs `Authorization: Bearer <token>`.",
        version="1",
        lifespan=lifespan,
        # /openapi.json is the contract; FastAPI's /docs and /redoc pages fetch their scripts from a
        # CDN, which an air-gapped deployment cannot reach (and a page must not need).
        docs_url=None,
        redoc_url=None,
    )
    app.state.token = token.encode()
    app.state.service = service
    scorings = [Scoring.of(service, name, settings.max_rows) for name in service.use_cases]
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(ScoreLane, scorings=scorings, token=token, max_bytes=settings.max_body_bytes)
    app.include_router(health_router(service))
    app.include_router(models_router(service))
    app.include_router(scoring_router(scorings, service))
    _add_error_handlers(app)
    return app


def app_from_env() -> FastAPI:
    """The app on the platform's connections and the serving settings (`uvicorn --factory`)."""
    from include.config import Settings
    from include.serving.champion import ChampionSource
    from include.usecases.spec import get_spec, load_specs

    settings, platform = ServingSettings.from_env(), Settings.from_env()
    specs = [get_spec(name, platform.spec_dir) for name in settings.use_cases] or list(
        load_specs(platform.spec_dir).specs
    )
    service = ScoringService(specs, ChampionSource.from_settings(), settings.engine, settings.poll_seconds)
    log.info("serving %s (engine %s)", [s.name for s in specs], settings.engine)
    return create_app(service, settings.bearer_token(), settings)
