"""The UI page's FastAPI app: a JSON API per resource and the server-rendered pages that show it.

Mounted by `plugins/ml_platform.py` in Airflow's API server at `include.ui.URL_PREFIX`. Every route
depends on Airflow's auth (`include.ui.auth`), declared once per router. The JSON routes and the
pages return the same models (`include.ui.views`); the pages draw them as inline SVG.
"""

from __future__ import annotations

import pathlib
from functools import cache
from typing import Annotated, Any

import sqlalchemy as sa
from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from include.config import Settings
from include.registry.registry import MAX_VERSION, ChampionChange, Registry
from include.ui import NAV_NAME, URL_PREFIX, charts, views
from include.ui.auth import champion_mover, current_user, may_read, use_case_reader, use_case_spec
from include.usecases.spec import UseCase, load_specs

TEMPLATES = Environment(
    loader=FileSystemLoader(pathlib.Path(__file__).resolve().parent / "templates"),
    autoescape=select_autoescape(),
)
TEMPLATES.globals["charts"] = charts
TEMPLATES.globals["zip"] = zip


@cache
def _engine(conn_id: str) -> sa.Engine:
    from include.platform.schema import platform_engine

    return platform_engine(conn_id)


def platform_db() -> sa.Engine:
    """The platform database (one engine per process, checked to be at the newest schema revision)."""
    return _engine(Settings.from_env().platform_db_conn_id)


Engine = Annotated[sa.Engine, Depends(platform_db)]
Spec = Annotated[UseCase, Depends(use_case_spec)]
User = Annotated[Any, Depends(current_user)]
VersionNumber = Annotated[int, Path(ge=1, le=MAX_VERSION, description="a registered version's number")]


def _readable(user: Any) -> list[views.UseCaseLink]:
    specs = load_specs(Settings.from_env().spec_dir).specs
    return [views.UseCaseLink(name=s.name, description=s.description) for s in specs if may_read(user, s)]


def _version(engine: sa.Engine, spec: UseCase, version: int) -> views.VersionDetail:
    try:
        return views.version_detail(engine, spec, version)
    except LookupError as missing:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(missing)) from missing


def _use_case_router(tag: str, prefix: str = "/api/use-cases/{use_case}", **kwargs: Any) -> APIRouter:
    """A router under one use case, readable only by users who may read its DAGs."""
    return APIRouter(prefix=prefix, tags=[tag], dependencies=[Depends(use_case_reader)], **kwargs)


use_cases_api = APIRouter(prefix="/api/use-cases", tags=["use cases"], dependencies=[Depends(current_user)])
overview_api = _use_case_router("overview")
versions_api = _use_case_router("versions")
gate_api = _use_case_router("gate decisions")
scoring_api = _use_case_router("scoring")
ingest_api = _use_case_router("ingest")
performance_api = _use_case_router("performance")
champion_api = _use_case_router("champion")
pages = _use_case_router("pages", "/{use_case}", include_in_schema=False, default_response_class=HTMLResponse)
home = APIRouter(tags=["pages"], include_in_schema=False, dependencies=[Depends(current_user)])


@use_cases_api.get("")
def list_use_cases(user: User) -> list[views.UseCaseLink]:
    """The use cases whose DAGs the user may read."""
    return _readable(user)


@overview_api.get("/overview")
def get_overview(spec: Spec, engine: Engine) -> views.Overview:
    """The champion, the timeline of champions and every version with its status and reason."""
    return views.overview(engine, spec)


@versions_api.get("/versions/{version}")
def get_version(spec: Spec, engine: Engine, version: VersionNumber) -> views.VersionDetail:
    """One version: holdout curves beside its champion's, confusion matrix, trials, lineage."""
    return _version(engine, spec, version)


@gate_api.get("/gate-decisions")
def get_gate_decisions(spec: Spec, engine: Engine) -> views.GateDecisions:
    """Every gate decision: candidate and champion side by side, every metric, the reasons."""
    return views.gate_decisions(engine, spec)


@scoring_api.get("/scoring")
def get_scoring(spec: Spec, engine: Engine) -> views.Scoring:
    """Per scored day: rows in / scored / rejected, the model, the score histogram; the drift grid."""
    return views.scoring(engine, spec)


@ingest_api.get("/ingest")
def get_ingest(spec: Spec, engine: Engine) -> views.Ingest:
    """Per ingested day: rows read / quarantined / written per source; the top quarantine reasons."""
    return views.ingest(engine, spec)


@champion_api.post("/champion", status_code=status.HTTP_201_CREATED)
def move_champion(
    spec: Spec,
    engine: Engine,
    move: views.ChampionMoveRequest,
    user: Annotated[BaseUser, Depends(champion_mover)],
) -> ChampionChange:
    """Move the champion by hand (a promotion, or a rollback to an earlier champion), from scoring
    day `ds` on (default today, UTC); needs edit access to the training DAG (403 otherwise). The move
    is a new entry of the audit trail naming the user; a move the registry refuses is 422 with why."""
    try:
        return Registry(engine).move_champion(
            spec.name,
            move.version,
            kind=move.kind,
            actor=user.get_name(),
            reason=move.reason,
            ds=move.ds,
            force=move.force,
        )
    except LookupError as missing:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(missing)) from missing
    except ValueError as refused:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(refused)) from refused


@performance_api.get("/performance")
def get_performance(spec: Spec, engine: Engine) -> views.Performance:
    """Per matured scored day: realised metrics with intervals, the expectation, coverage, decay."""
    return views.performance(engine, spec)


def _page(template: str, use_case: str | None = None, **values: Any) -> HTMLResponse:
    base = f"{URL_PREFIX}/{use_case}"
    return HTMLResponse(
        TEMPLATES.get_template(template).render(
            nav_name=NAV_NAME, prefix=URL_PREFIX, use_case=use_case, base=base, **values
        )
    )


@home.get("/")
def index_page(user: User) -> HTMLResponse:
    return _page("index.html", use_cases=_readable(user))


@pages.get("/")
def overview_page(spec: Spec, engine: Engine) -> HTMLResponse:
    model = views.overview(engine, spec)
    # The timeline runs to the newest training day (not the wall clock: the demo's data is past).
    last_day = max([*(v.ds for v in model.versions), *(c.since for c in model.champions)], default=None)
    timeline = charts.champion_timeline([(c.version, c.since, c.until) for c in model.champions], last_day)
    return _page("overview.html", page="overview", use_case=spec.name, m=model, timeline=timeline)


@pages.get("/versions/{version}")
def version_page(spec: Spec, engine: Engine, version: VersionNumber) -> HTMLResponse:
    model = _version(engine, spec, version)
    roc, pr = _curve_charts(model)
    return _page("version.html", page="version", use_case=spec.name, m=model, roc=roc, pr=pr)


def _curve_charts(model: views.VersionDetail) -> tuple[str, str]:
    """The ROC and precision-recall charts: the version's curves and its judge's, each at its threshold."""
    judged = model.decision.champion_version if model.decision else None
    drawn = [(f"v{model.version} (candidate)", "candidate", model.curves)]
    if model.champion_curves is not None:
        drawn.append((f"v{judged} (champion)", "champion", model.champion_curves))
    roc, pr = [], []
    for name, css, curves in drawn:
        if curves is None or curves.kind != "binary":  # the other tasks: drawn by their own pictures
            continue
        c = curves.confusion
        tpr = c.tp / max(c.tp + c.fn, 1)
        roc.append(
            charts.Series(name, css, curves.roc.fpr, curves.roc.tpr, (c.fp / max(c.fp + c.tn, 1), tpr))
        )
        pr.append(
            charts.Series(name, css, curves.pr.recall, curves.pr.precision, (tpr, c.tp / max(c.tp + c.fp, 1)))
        )
    return (
        charts.curve_chart(
            "ROC curve (holdout)", "false positive rate", "true positive rate", roc, diagonal=True
        ),
        charts.curve_chart("Precision-recall curve (holdout)", "recall", "precision", pr),
    )


@pages.get("/gate")
def gate_page(spec: Spec, engine: Engine) -> HTMLResponse:
    return _page("gate.html", page="gate", use_case=spec.name, m=views.gate_decisions(engine, spec))


@pages.get("/scoring")
def scoring_page(spec: Spec, engine: Engine) -> HTMLResponse:
    model = views.scoring(engine, spec)
    days = sorted({c.ds for c in model.drift} | {d.ds for d in model.days})
    cells = [(c.ds, c.feature, c.psi, c.level) for c in model.drift]
    return _page("scoring.html", page="scoring", use_case=spec.name, m=model, days=days, cells=cells)


@pages.get("/ingest")
def ingest_page(spec: Spec, engine: Engine) -> HTMLResponse:
    return _page("ingest.html", page="ingest", use_case=spec.name, m=views.ingest(engine, spec))


@pages.get("/performance")
def performance_page(spec: Spec, engine: Engine) -> HTMLResponse:
    model = views.performance(engine, spec)
    primary = model.primary_metric
    points = [
        charts.RealisedPoint(
            d.ds,
            d.metrics.get(primary, {}).get("estimate"),
            d.metrics.get(primary, {}).get("lower"),
            d.metrics.get(primary, {}).get("upper"),
            d.expected.get(primary),
            d.decayed,
        )
        for d in model.days
    ]
    chart = charts.realised_chart(f"Realised {primary} per matured scored day", primary, points)
    return _page("performance.html", page="performance", use_case=spec.name, m=model, chart=chart)


async def _refused_request(request: Request, refused: RequestValidationError) -> JSONResponse:
    """422 naming each problem; the value refused is left out (it may not be text at all: a body
    sent as bytes that are not UTF-8 would fail FastAPI's own answer)."""
    problems = [{k: v for k, v in error.items() if k != "input"} for error in refused.errors()]
    return JSONResponse({"detail": jsonable_encoder(problems)}, status.HTTP_422_UNPROCESSABLE_CONTENT)


def create_app() -> FastAPI:
    """The app the plugin mounts; its OpenAPI document is at `<prefix>/openapi.json`."""
    app = FastAPI(
        title="ML platform",
        description="The platform's registry, gate decisions, scoring and ingest records, per use case.",
        version="1",
        # Swagger UI and ReDoc load scripts from a CDN: off (air-gapped installs); the document stays.
        docs_url=None,
        redoc_url=None,
    )
    app.add_exception_handler(RequestValidationError, _refused_request)
    routers = (
        use_cases_api,
        overview_api,
        versions_api,
        gate_api,
        scoring_api,
        ingest_api,
        performance_api,
        champion_api,
    )
    for router in (*routers, home, pages):
        app.include_router(router)
    return app
