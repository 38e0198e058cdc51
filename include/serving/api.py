"""The service's resources: one router each for health, models and scoring, and their response models.

The OpenAPI document is the contract: every use case gets its own `POST /v1/<use case>/score`
route whose body model is built from its spec (`include.serving.rows`), so the schema of each use
case's rows is documented field by field. Errors are answered by the handlers in
`include.serving.app` (404 unknown use case, 422 naming the row and the field, 503 no model).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import APIRouter, Response, Security
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError

from include.serving.auth import bearer
from include.serving.champion import VersionDetail
from include.serving.routes import TokenFirst
from include.serving.rows import ValueProblem, ValueRules, request_model
from include.serving.service import NotServing, ScoredRequest, ScoringService, Served, UnknownUseCase


class Problem(BaseModel):
    """An error: what went wrong, in words."""

    detail: str


class FieldProblem(BaseModel):
    """One problem with a request: which row (0-based) and which field, and what is wrong."""

    row: int | None = Field(description="the row's index in `rows`; null for the body as a whole")
    field: str | None = Field(description="the field's name; null for the row or the body as a whole")
    message: str
    type: str = Field(description="pydantic's error type, e.g. missing, extra_forbidden, literal_error")


class ValidationProblem(BaseModel):
    """A request refused before any row was scored."""

    detail: str
    errors: list[FieldProblem]


class Prediction(BaseModel):
    """One row's answer (a binary use case's), with the model version that produced it."""

    row: int
    entity_id: str | None
    score: float = Field(description="the positive class's probability")
    predicted_label: Literal[0, 1] = Field(description="1 when the score reaches the version's threshold")
    model_version: int
    model_sha256: str


class ValuePrediction(BaseModel):
    """One row's answer (a regression use case's), with the model version that produced it."""

    row: int
    entity_id: str | None
    value: float = Field(description="the predicted value, on the label's own scale")
    model_version: int
    model_sha256: str


class ClassPrediction(BaseModel):
    """One row's answer (a multiclass use case's), with the model version that produced it."""

    row: int
    entity_id: str | None
    predicted_class: str = Field(description="the most probable class")
    probability: float = Field(description="its probability")
    probabilities: dict[str, float] = Field(description="every class's probability, in the version's order")
    model_version: int
    model_sha256: str


class ScoreResponse(BaseModel):
    """Every row of a request, scored by one model version."""

    use_case: str
    model_version: int
    model_sha256: str
    predictions: list[Prediction]

    @classmethod
    def of(cls, use_case: str, scored: ScoredRequest, entity_ids: Sequence[str | None]) -> BaseModel:
        """The answer of the scored request's task (this class, `ValueResponse` or `ClassResponse`)."""
        version, sha = scored.version.version, scored.version.sha256
        common = {"model_version": version, "model_sha256": sha}
        rows = list(enumerate(entity_ids))
        if scored.task == "regression":
            values = scored.outputs.tolist()
            answers = [ValuePrediction(row=n, entity_id=e, value=values[n], **common) for n, e in rows]
            return ValueResponse(use_case=use_case, **common, predictions=answers)
        if scored.task == "multiclass":
            names = [str(c) for c in scored.classes or ()]
            proba = scored.outputs.tolist()
            answers = [
                ClassPrediction(
                    row=n,
                    entity_id=e,
                    predicted_class=names[scored.labels[n]],
                    probability=proba[n][scored.labels[n]],
                    probabilities=dict(zip(names, proba[n], strict=True)),
                    **common,
                )
                for n, e in rows
            ]
            return ClassResponse(use_case=use_case, **common, predictions=answers)
        scores, labels = scored.outputs.tolist(), scored.labels.tolist()
        answers = [
            Prediction(row=n, entity_id=e, score=scores[n], predicted_label=labels[n], **common)
            for n, e in rows
        ]
        return cls(use_case=use_case, **common, predictions=answers)


class ValueResponse(BaseModel):
    """Every row of a request to a regression use case, predicted by one model version."""

    use_case: str
    model_version: int
    model_sha256: str
    predictions: list[ValuePrediction]


class ClassResponse(BaseModel):
    """Every row of a request to a multiclass use case, classified by one model version."""

    use_case: str
    model_version: int
    model_sha256: str
    predictions: list[ClassPrediction]


RESPONSES = {"binary": ScoreResponse, "regression": ValueResponse, "multiclass": ClassResponse}


class ModelInfo(BaseModel):
    """The version a use case serves, since when, on which path, and its detail from the registry."""

    use_case: str
    version: int
    sha256: str
    promoted_at: dt.datetime | None = Field(description="when the champion alias moved to this version")
    served_since: dt.datetime = Field(description="when this service started serving it")
    engine: Literal["fast", "sklearn"] = Field(description="the scoring path (docs/serving.md)")
    problem: str | None = Field(description="a newer champion that failed to load, if any")
    detail: VersionDetail = Field(
        description="the version's detail as the registry holds it, the same the CLI and the UI show"
    )

    @classmethod
    def of(cls, served: Served, problem: str | None) -> ModelInfo:
        version = served.version
        return cls(
            use_case=version.use_case,
            version=version.version,
            sha256=version.sha256,
            promoted_at=served.promoted_at,
            served_since=served.served_since,
            engine=served.engine,  # type: ignore[arg-type]
            problem=problem,
            detail=served.detail,
        )


class UseCaseHealth(BaseModel):
    """Whether a use case is served, by which version, and in a few words what is wrong, if anything."""

    serving: bool
    version: int | None = Field(description="the version served")
    reason: str | None = Field(
        description="why none is served, or what failed following the champion: a short reason "
        "naming no file or server (the whole story: `GET /v1/{use_case}/model`, behind the token)"
    )


class Health(BaseModel):
    """`ok` when every use case has a model to serve, else `degraded` (the reasons are given).

    Open to all, so it says no more than this: no file, URL, engine or model detail.
    """

    status: Literal["ok", "degraded"]
    use_cases: dict[str, UseCaseHealth]


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "no bearer token, or a wrong one (checked before the body)"},
    404: {"model": Problem, "description": "unknown use case"},
    503: {"model": Problem, "description": "no model to serve (no champion, or it failed to load)"},
}
SCORE_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    413: {"model": Problem, "description": "request body over the size limit"},
    422: {
        "model": ValidationProblem,
        "description": "a bad row (names the row and the field: a type, or a value ingest would not "
        "keep), or a body that is not JSON the service can read (malformed, not UTF-8, too deep)",
    },
}


def health_router(service: ScoringService) -> APIRouter:
    """`GET /health`: open to all (no model details beyond the version served, no path)."""
    router = APIRouter(tags=["health"])

    @router.get("/health", response_model=Health)
    async def health() -> Health:
        states = {name: service.state(name) for name in service.use_cases}
        use_cases = {
            name: UseCaseHealth(
                serving=state.served is not None,
                version=state.served.version.version if state.served else None,
                reason=state.reason,
            )
            for name, state in states.items()
        }
        ok = all(s.serving for s in use_cases.values())
        return Health(status="ok" if ok else "degraded", use_cases=use_cases)

    return router


def models_router(service: ScoringService) -> APIRouter:
    """`GET /v1/{use_case}/model`: the version served, since when, and its detail."""
    router = APIRouter(prefix="/v1", tags=["model"], route_class=TokenFirst, dependencies=[Security(bearer)])

    @router.get("/{use_case}/model", response_model=ModelInfo, responses=ERRORS)
    async def model(use_case: str) -> ModelInfo:
        return ModelInfo.of(*service.current(use_case))

    return router


@dataclass(frozen=True)
class Scoring:
    """One use case's scoring: the request body it takes, ingest's rules for its values, its answer."""

    name: str
    service: ScoringService
    body_model: type[BaseModel]
    rules: ValueRules
    entity_id: str
    max_rows: int

    @classmethod
    def of(cls, service: ScoringService, name: str, max_rows: int) -> Scoring:
        spec = service.state(name).spec
        body = request_model(spec, max_rows)
        return cls(name, service, body, ValueRules.of(spec), spec.entity_id, max_rows)

    def answer(self, rows: list[dict[str, Any]]) -> bytes:
        """The JSON answer to typed rows (`body_model`'s), every row scored by one version.

        Raises:
            RequestValidationError: for values ingest would not keep (422, as a type error).
            NotServing: when there is no model to score with (503).
        """
        problems = self.rules.problems(rows)
        if problems:
            raise _refusal(problems)
        scored = self.service.score(self.name, rows)
        answer = ScoreResponse.of(self.name, scored, [row[self.entity_id] for row in rows])
        # Serialised once, by the response model itself (FastAPI would dump, re-validate, then encode).
        return answer.model_dump_json().encode()

    def answer_body(self, body: bytes) -> bytes | None:
        """The answer to a JSON request body that the route answers 200; None for any other body.

        pydantic reads the JSON and the rows in one pass, where FastAPI decodes the JSON first: no
        more leniently (a lone surrogate, a byte-order mark: None) and into the same values.
        """
        try:
            rows = [row.__dict__ for row in self.body_model.model_validate_json(body).rows]  # type: ignore[attr-defined]
            return self.answer(rows)
        except (ValidationError, RequestValidationError, NotServing):
            return None


def scoring_router(scorings: Sequence[Scoring], service: ScoringService) -> APIRouter:
    """`POST /v1/<use case>/score` for each served use case, each with its spec's row schema."""
    router = APIRouter(prefix="/v1", tags=["score"], route_class=TokenFirst, dependencies=[Security(bearer)])
    for scoring in scorings:
        _add_score_route(router, scoring)

    @router.post("/{use_case}/score", include_in_schema=False)
    async def unknown(use_case: str) -> None:
        raise UnknownUseCase(f"no use case {use_case!r}; served: {service.use_cases}")

    return router


def _add_score_route(router: APIRouter, scoring: Scoring) -> None:
    name, max_rows = scoring.name, scoring.max_rows
    spec = scoring.service.state(name).spec

    async def score(body: Any) -> Response:
        rows = [row.__dict__ for row in body.rows]  # type: ignore[attr-defined]
        return Response(scoring.answer(rows), media_type="application/json")

    # The body model is made at run time: the annotation must be the class, not a deferred name.
    score.__annotations__ = {"body": scoring.body_model, "return": Response}
    router.add_api_route(
        f"/{name}/score",
        score,
        methods=["POST"],
        response_model=RESPONSES[spec.task],
        responses=SCORE_ERRORS,
        name=f"score_{name}",
        summary=f"Score {name} rows with the champion",
        description=f"One row or many (at most {max_rows}): each row holds every feature of the "
        f"`{name}` spec. {spec.description}",
    )


def _refusal(problems: list[ValueProblem]) -> RequestValidationError:
    """Values the spec's rules refuse, as the 422 a type error gets (`include.serving.app`)."""
    return RequestValidationError(
        [
            {"type": p.type, "loc": ("body", "rows", p.row, p.field), "msg": p.message, "input": p.value}
            for p in problems
        ]
    )
