"""The UI app's contract through TestClient: Airflow's real auth manager and tokens, every route."""

from __future__ import annotations

import datetime as dt
import re

import jwt
import pytest
import sqlalchemy as sa
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from include.platform.schema import upgrade
from include.ui.app import create_app, platform_db
from include.usecases.spec import get_spec
from tests.unit.ui import platform_data

APP = create_app()
ROUTES = sorted(r.path for r in APP.routes if isinstance(r, APIRoute) and "GET" in r.methods)
WRITES = sorted(r.path for r in APP.routes if isinstance(r, APIRoute) and "POST" in r.methods)
PARAMS = {"use_case": "churn", "version": "2"}


def _url(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PARAMS[m.group(1)], path)


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    engine = sa.create_engine(f"sqlite:///{tmp_path_factory.mktemp('ui') / 'platform.db'}")
    upgrade(engine)
    platform_data.fill(engine, get_spec("churn"), versions=3, days=31)
    return engine


@pytest.fixture(scope="module")
def auth_manager(airflow_db):
    """Airflow's simple auth manager, as the API server initialises it."""
    from airflow.api_fastapi.app import init_auth_manager, purge_cached_app

    manager = init_auth_manager()
    yield manager
    purge_cached_app()


@pytest.fixture(scope="module")
def client(engine, auth_manager):
    APP.dependency_overrides[platform_db] = lambda: engine
    yield TestClient(APP)
    APP.dependency_overrides.clear()


def token(manager, role: str | None, **kwargs) -> str:
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return manager.generate_jwt(SimpleAuthManagerUser(username=f"u-{role}", role=role), **kwargs)


def test_the_one_write_is_the_champion_move() -> None:
    assert WRITES == ["/api/use-cases/{use_case}/champion"]


def test_the_app_has_a_route_per_page_and_resource() -> None:
    assert ROUTES == [
        "/",
        "/api/use-cases",
        "/api/use-cases/{use_case}/gate-decisions",
        "/api/use-cases/{use_case}/ingest",
        "/api/use-cases/{use_case}/overview",
        "/api/use-cases/{use_case}/performance",
        "/api/use-cases/{use_case}/scoring",
        "/api/use-cases/{use_case}/versions/{version}",
        "/{use_case}/",
        "/{use_case}/gate",
        "/{use_case}/ingest",
        "/{use_case}/performance",
        "/{use_case}/scoring",
        "/{use_case}/versions/{version}",
    ]


@pytest.mark.parametrize("path", ROUTES)
def test_no_token_is_401_and_nothing_else(client, path) -> None:
    response = client.get(_url(path))
    assert (response.status_code, response.json()) == (401, {"detail": "Not authenticated"})


@pytest.mark.parametrize("path", ROUTES)
def test_a_forged_or_expired_token_is_401(client, auth_manager, path) -> None:
    forged = jwt.encode({"sub": "admin", "role": "admin"}, "not-the-secret-" * 5, algorithm="HS512")
    expired = token(auth_manager, "admin", expiration_time_in_seconds=-60)
    for bad in (forged, expired, "not-a-jwt"):
        response = client.get(_url(path), headers={"Authorization": f"Bearer {bad}"})
        assert (response.status_code, response.json()) == (401, {"detail": "Not authenticated"})


@pytest.mark.parametrize("path", [p for p in ROUTES if "{use_case}" in p])
@pytest.mark.parametrize("role", [None, "wizard", 123, ["admin"]])
def test_a_user_who_may_not_read_gets_what_an_unknown_use_case_gets(client, auth_manager, path, role):
    """No rights (or a role the auth manager does not know, or one that is not a name at all): 404 for
    churn as for a made-up name, so trying names teaches nothing; the answer names no server path."""
    headers = {"Authorization": f"Bearer {token(auth_manager, role)}"}
    known = client.get(_url(path), headers=headers)
    unknown = client.get(_url(path).replace("churn", "nope"), headers=headers)
    assert (known.status_code, known.json()) == (404, {"detail": "no use case 'churn' that you may read"})
    assert (unknown.status_code, unknown.json()) == (404, {"detail": "no use case 'nope' that you may read"})


@pytest.mark.parametrize("path", ROUTES)
def test_a_viewer_reads_every_route_with_the_ui_cookie(client, auth_manager, path) -> None:
    response = client.get(_url(path), cookies={"_token": token(auth_manager, "viewer")})
    assert response.status_code == 200, response.text


def test_the_use_case_list_leaves_out_what_the_user_may_not_read(client, auth_manager) -> None:
    viewer = {"Authorization": f"Bearer {token(auth_manager, 'viewer')}"}
    nobody = {"Authorization": f"Bearer {token(auth_manager, None)}"}
    assert [u["name"] for u in client.get("/api/use-cases", headers=viewer).json()] == ["churn"]
    assert client.get("/api/use-cases", headers=nobody).json() == []


@pytest.mark.parametrize("role", [123, ["admin"], {"admin": True}])
def test_a_signed_role_that_is_not_a_name_has_no_rights_not_a_server_error(client, auth_manager, role):
    """Found by the API fuzz: a validly signed token whose role is not a string made the simple auth
    manager raise (`'int' object has no attribute 'upper'`): a 500 on every route, the list included."""
    headers = {"Authorization": f"Bearer {token(auth_manager, role)}"}
    assert client.get("/api/use-cases", headers=headers).json() == []
    assert client.get("/", headers=headers).status_code == 200
    answer = client.get("/api/use-cases/churn/overview", headers=headers)
    assert (answer.status_code, answer.json()) == (404, {"detail": "no use case 'churn' that you may read"})


@pytest.fixture
def viewer(client, auth_manager):
    client.cookies.set("_token", token(auth_manager, "viewer"))
    yield client
    client.cookies.clear()


def test_an_unknown_use_case_or_version_is_404_for_a_signed_in_user(viewer) -> None:
    assert viewer.get("/api/use-cases/nope/overview").status_code == 404
    missing = viewer.get("/api/use-cases/churn/versions/99")
    assert (missing.status_code, missing.json()["detail"]) == (
        404,
        "churn: no model version 99 (known versions: v1, v2, v3)",
    )
    for beyond in ("9223372036854775808", "2147483648", "0", "-1"):
        for path in (f"/api/use-cases/churn/versions/{beyond}", f"/churn/versions/{beyond}"):
            answer = viewer.get(path)
            assert answer.status_code == 422, (path, answer.status_code)
            assert answer.json()["detail"][0]["loc"] == ["path", "version"]


def test_the_overview_names_the_champion_its_history_and_every_version(viewer) -> None:
    body = viewer.get("/api/use-cases/churn/overview").json()
    # v1 first champion; v2 (worse) rejected; v3 better than v1, promoted.
    assert body["champion"]["version"] == 3
    assert [(c["version"], c["since"], c["until"]) for c in body["champions"]] == [
        (1, "2025-01-01", "2025-01-21"),
        (3, "2025-01-21", None),
    ]
    assert [(v["version"], v["status"]) for v in body["versions"]] == [
        (3, "champion"),
        (2, "rejected"),
        (1, "retired"),
    ]
    assert body["versions"][1]["status_reason"] == "roc_auc not better than the champion's"


def test_a_version_carries_its_stored_curves_and_its_judges(viewer, engine) -> None:
    body = viewer.get("/api/use-cases/churn/versions/3").json()
    stored = engine.connect().execute(sa.text("SELECT curves FROM model_versions WHERE version = 3")).scalar()
    # Stored before curves had a kind: read as binary.
    assert body["curves"] == {
        "kind": "binary",
        **sa.types.JSON().result_processor(engine.dialect, None)(stored),
    }
    assert body["decision"]["champion_version"] == 1
    assert body["champion_curves"]["rows"] == 1000
    assert sum(body["curves"]["confusion"].values()) == 1000
    assert [t["chosen"] for t in body["trials"]].count(True) == 1
    importance = body["importance"]
    assert (importance["metric"], importance["rows"]) == ("roc_auc", 1000)
    assert [f["feature"] for f in importance["features"]] == list(get_spec("churn").features.all)
    assert viewer.get("/api/use-cases/churn/versions/1").json()["importance"] is None
    assert body["trials"][-1] == {**body["trials"][-1], "trial_id": "random_forest-7", "chosen": True}
    assert (
        body["lineage"]["run_path"] == "/dags/churn_train/runs/scheduled__2025-01-21T03%3A00%3A00%2B00%3A00"
    )


def test_gate_decisions_show_both_models_metric_by_metric(viewer) -> None:
    body = viewer.get("/api/use-cases/churn/gate-decisions").json()
    assert [(d["candidate_version"], d["champion_version"], d["passed"]) for d in body["decisions"]] == [
        (3, 1, True),
        (2, 1, False),
        (1, None, True),
    ]
    roc = next(m for m in body["decisions"][1]["metrics"] if m["metric"] == "roc_auc")
    assert roc["candidate_better"] is False and roc["difference"] == pytest.approx(
        roc["candidate"] - roc["champion"]
    )
    log_loss = next(m for m in body["decisions"][0]["metrics"] if m["metric"] == "log_loss")
    assert log_loss["difference"] < 0 and log_loss["candidate_better"] is True  # lower is better
    assert body["decisions"][1]["confidence"] == 0.9
    assert (roc["gain_lower"], roc["gain"], roc["gain_upper"]) == pytest.approx(
        (roc["difference"] - 0.01, roc["difference"], roc["difference"] + 0.01)
    )
    assert log_loss["gain"] is None  # the gate judged roc_auc and accuracy only
    assert body["decisions"][1]["slices"] == [
        {
            "column": "Contract",
            "value": "Month-to-month",
            "rows": 610,
            "gain": 0.004,
            "lower": -0.006,
            "upper": 0.014,
        }
    ]
    assert body["decisions"][2]["slices"] == [] and body["decisions"][2]["confidence"] is None


def test_scoring_has_every_day_and_a_drift_cell_per_feature_and_day(viewer) -> None:
    body = viewer.get("/api/use-cases/churn/scoring").json()
    features = len(get_spec("churn").features.all)
    assert len(body["days"]) == 31 and len(body["features"]) == features
    assert len(body["drift"]) == 31 * features
    assert {d["model_version"] for d in body["days"]} == {1, 3}
    assert body["days"][0]["rows_in"] == body["days"][0]["rows_scored"] + body["days"][0]["rows_rejected"]


def test_ingest_sums_the_quarantine_reasons_of_every_day(viewer) -> None:
    body = viewer.get("/api/use-cases/churn/ingest").json()
    assert len(body["days"]) == 31
    # Days 5 and 35 of each 30 have 2 bad billing rows: in 31 days, day 6 (index 5) only.
    assert body["top_reasons"] == [
        {"source": "billing", "reason": "TotalCharges: not a number", "rows": 2, "days": 1}
    ]


def test_the_openapi_document_describes_every_json_route(viewer) -> None:
    document = viewer.get("/openapi.json").json()
    assert sorted(document["paths"]) == sorted(p for p in {*ROUTES, *WRITES} if p.startswith("/api/"))
    assert "VersionDetail" in document["components"]["schemas"]


def test_pages_draw_the_curves_and_the_heatmap_with_their_values(viewer) -> None:
    version = viewer.get("/churn/versions/3").text
    assert version.count('class="curve candidate"') == 2 and version.count('class="curve champion"') == 2
    assert 'data-series="v1 (champion)"' in version
    shown = re.findall(r'<tr data-feature="([^"]+)"><td>[^<]+</td><td class="num">([0-9.]+)</td>', version)
    assert shown[:2] == [("tenure", "0.0500"), ("MonthlyCharges", "0.0250")]
    assert "Not stored for this version" in viewer.get("/churn/versions/1").text
    scoring = viewer.get("/churn/scoring").text
    features = len(get_spec("churn").features.all)
    assert scoring.count('<rect class="cell ') == 31 * features
    assert f'data-features="{features}" data-days="31"' in scoring
    assert "<script" not in version + scoring and "http" not in re.sub(r'href="/[^"]*"', "", scoring)
    assert dt.date(2025, 1, 31).isoformat() in scoring
