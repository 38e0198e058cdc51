"""The HTTP contract through `TestClient`: auth, the error answers, the schema, following the champion.

The registry here is a stand-in (`FakeSource`): tests/integration/test_serving.py runs the real one.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from include.registry.read_models import describe
from include.serving.api import Scoring
from include.serving.app import create_app
from include.serving.champion import ModelVersion, VersionModel
from include.serving.rows import rows_to_frame
from include.serving.service import ScoringService
from include.serving.settings import ServingSettings, SettingsError
from tests.unit.serving.conftest import version_model

TOKEN = "unit-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def entry(version: int, sha: str) -> ModelVersion:
    return version_model(None, version, sha).version


class FakeSource:
    """A registry whose champion a test moves, and model files a test can break."""

    def __init__(self, pipelines: dict) -> None:
        self.pipelines = pipelines
        self.current: ModelVersion | None = None
        self.broken: set[int] = set()

    def champion(self, use_case: str):
        return None if self.current is None else (self.current, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))

    def detail(self, spec, version: ModelVersion):
        return describe(version, None, spec.train_dag_id)

    def load(self, version: ModelVersion) -> VersionModel:
        if version.version in self.broken:
            raise ValueError(
                f"churn v{version.version} (file:///srv/lake/models/churn/v{version.version}.skops): "
                f"checksum mismatch: expected sha256 {version.sha256}, the data has 1234"
            )
        return replace(version_model(self.pipelines[version.version]), version=version)


@pytest.fixture
def source(pipelines) -> FakeSource:
    source = FakeSource({1: pipelines["logistic_regression"], 2: pipelines["hist_gradient_boosting"]})
    source.current = entry(1, "a" * 64)
    return source


@pytest.fixture
def service(spec, source) -> ScoringService:
    return ScoringService([spec], source, poll_seconds=3600)


@pytest.fixture
def client(service):
    app = create_app(service, TOKEN, ServingSettings(max_body_bytes=50_000, max_rows=20))
    with TestClient(app) as client:
        yield client


def score(client: TestClient, rows: list[dict], headers: dict | None = AUTH, **kwargs):
    return client.post("/v1/churn/score", json={"rows": rows}, headers=headers, **kwargs)


def test_one_row_and_many_are_scored_by_the_champion(client, spec, pipelines, request_rows):
    one = score(client, [{**request_rows[0], "customerID": "7590-VHVEG"}])
    assert one.status_code == 200
    body = one.json()
    assert (body["use_case"], body["model_version"], body["model_sha256"]) == ("churn", 1, "a" * 64)
    [prediction] = body["predictions"]
    expected = pipelines["logistic_regression"].predict_proba(rows_to_frame(request_rows[:1], spec))[0, 1]
    assert prediction["score"] == pytest.approx(expected, abs=1e-12)
    assert prediction["predicted_label"] == int(prediction["score"] >= 0.4)  # the registry's threshold
    assert (prediction["row"], prediction["entity_id"]) == (0, "7590-VHVEG")
    assert (prediction["model_version"], prediction["model_sha256"]) == (1, "a" * 64)

    many = score(client, request_rows[:20]).json()["predictions"]
    assert [p["row"] for p in many] == list(range(20))
    assert {p["model_version"] for p in many} == {1}


def test_the_fast_lane_answers_as_the_route_and_leaves_the_rest_to_it(client, request_rows, monkeypatch):
    """`ScoreLane` answers `Bearer <token>` itself; `bearer <token>` (HTTPBearer takes any case) goes
    through FastAPI's route: the same bytes. A first Authorization header that is wrong is the app's 401."""
    answered, answer_body = [], Scoring.answer_body

    def spied(*args):
        answered.append(answer_body(*args))
        return answered[-1]

    monkeypatch.setattr(Scoring, "answer_body", spied)
    body = json.dumps({"rows": request_rows[:5]}).encode()
    as_json = {"Content-Type": "application/json"}
    lane = client.post("/v1/churn/score", content=body, headers={**AUTH, **as_json})
    lower = {"Authorization": f"bearer {TOKEN}", **as_json}
    route = client.post("/v1/churn/score", content=body, headers=lower)
    assert lane.status_code == route.status_code == 200
    assert lane.content == route.content and lane.headers["content-type"] == route.headers["content-type"]
    assert answered == [lane.content]  # the lane answered the first, and did not read the second
    twice = [("authorization", "Bearer nope"), ("authorization", f"Bearer {TOKEN}"), *as_json.items()]
    assert client.post("/v1/churn/score", content=body, headers=twice).status_code == 401


def test_scoring_needs_the_token(client, request_rows):
    missing = score(client, request_rows[:1], headers=None)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert "missing bearer token" in missing.json()["detail"]
    wrong = score(client, request_rows[:1], headers={"Authorization": "Bearer nope"})
    assert (wrong.status_code, wrong.json()) == (401, {"detail": "invalid bearer token"})
    basic = score(client, request_rows[:1], headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert basic.status_code == 401
    assert client.get("/v1/churn/model").status_code == 401
    bad_rows = score(client, [{"tenure": "x"}], headers=None)
    assert bad_rows.status_code == 401  # the token is checked before the rows are
    assert client.post("/v1/nope/score", json={"rows": []}).status_code == 401  # no hint without a token
    assert client.get("/health").status_code == 200  # open: liveness only


def test_a_bad_row_is_refused_naming_the_row_and_the_field(client, request_rows):
    rows = [dict(r) for r in request_rows[:4]]
    rows[1]["tenure"] = "12"
    rows[2]["Contract"] = 2
    del rows[3]["gender"]
    rows[3]["colour"] = "red"
    answer = score(client, rows)
    assert answer.status_code == 422
    body = answer.json()
    assert "predictions" not in body
    assert [(e["row"], e["field"], e["type"]) for e in body["errors"]] == [
        (1, "tenure", "int_type"),
        (2, "Contract", "string_type"),
        (3, "gender", "missing"),
        (3, "colour", "extra_forbidden"),
    ]
    assert body["errors"][2]["message"] == "missing field"
    assert "unknown field" in body["errors"][3]["message"]
    assert body["detail"].startswith("4 problem(s), nothing scored: row 1, 'tenure': Input should be")


def test_an_unknown_field_is_named_even_when_its_name_is_empty(client, request_rows):
    """Found by the API fuzz: an unknown key "" was refused without its name (field null)."""
    answer = score(client, [request_rows[0], {**request_rows[1], "": 1}])
    assert answer.status_code == 422
    assert [(e["row"], e["field"], e["type"]) for e in answer.json()["errors"]] == [
        (1, "", "extra_forbidden")
    ]
    assert answer.json()["detail"] == (
        "1 problem(s), nothing scored: row 1, '': unknown field: not a feature of this use case"
    )


def test_values_outside_the_spec_are_refused_with_ingests_reasons(client, request_rows):
    """Once every value has its type, the spec's value rules, as ingest applies them, row by row."""
    rows = [dict(r) for r in request_rows[:3]]
    rows[0]["Contract"] = "Weekly"
    rows[2] |= {"tenure": 1201, "MonthlyCharges": 1e300}
    body = score(client, rows).json()
    assert [(e["row"], e["field"], e["type"]) for e in body["errors"]] == [
        (0, "Contract", "isin"),
        (2, "tenure", "less_than_or_equal_to"),
        (2, "MonthlyCharges", "finite_float32"),
    ]
    assert body["errors"][0]["message"] == "'Weekly' fails isin(['Month-to-month', 'One year', 'Two year'])"
    assert body["detail"] == (
        "3 problem(s), nothing scored: row 0, 'Contract': 'Weekly' fails isin(['Month-to-month', "
        "'One year', 'Two year']); row 2, 'tenure': 1201 fails less_than_or_equal_to(1200.0); row 2, "
        "'MonthlyCharges': 1e+300 fails finite_float32(|x| <= 3.4028235e+38)"
    )


@pytest.mark.parametrize(
    ("change", "field", "kind"),
    [
        ({"tenure": -1}, "tenure", "greater_than_or_equal_to"),
        ({"tenure": 1201}, "tenure", "less_than_or_equal_to"),
        ({"SeniorCitizen": 3}, "SeniorCitizen", "isin"),
        ({"MonthlyCharges": "70.5"}, "MonthlyCharges", "float_type"),
        ({"PaymentMethod": None}, "PaymentMethod", "string_type"),
        ({"gender": ""}, "gender", "is_empty"),
    ],
)
def test_a_value_outside_the_spec_is_refused(client, request_rows, change, field, kind):
    answer = score(client, [request_rows[0], {**request_rows[1], **change}])
    assert answer.status_code == 422
    assert [(e["row"], e["field"], e["type"]) for e in answer.json()["errors"]] == [(1, field, kind)]


@pytest.fixture(params=["auto", "sklearn"])
def forest_client(request, spec, pipelines):
    """The service on a random forest champion, on the compiled path (auto) or the pipeline's."""
    source = FakeSource({1: pipelines["random_forest"]})
    source.current = entry(1, "f" * 64)
    app = create_app(ScoringService([spec], source, request.param), TOKEN, ServingSettings())
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/v1/churn/model", headers=AUTH).json()["engine"] == (
            "fast" if request.param == "auto" else "sklearn"
        )
        yield client


@pytest.mark.parametrize("value", [1e300, -1e300, 1e39, 3.5e38])
def test_a_number_beyond_float32_is_422_naming_the_row_and_the_field_on_either_path(
    forest_client, request_rows, value
):
    """Issue #23, item 3: 1e300 was scored 1.0 on the fast path and a 500 on the pipeline's; ingest
    quarantines it (`finite_float32`), so the service refuses it, naming the row and the field."""
    answer = score(forest_client, [request_rows[0], {**request_rows[1], "MonthlyCharges": value}])
    assert answer.status_code == 422, answer.text
    [error, *also_below_minimum] = answer.json()["errors"]
    assert (error["row"], error["field"], error["type"]) == (1, "MonthlyCharges", "finite_float32")
    assert error["message"] == f"{value!r} fails finite_float32(|x| <= 3.4028235e+38)"
    assert [e["type"] for e in also_below_minimum] == (["greater_than_or_equal_to"] if value < 0 else [])
    assert score(forest_client, [{**request_rows[1], "MonthlyCharges": 3.4e38}]).status_code == 200


def test_without_the_token_every_protected_route_is_401_before_its_body_is_read(client, request_rows):
    """Issue #23, item 10: malformed JSON without a token was 422 before 401."""
    as_json = {"Content-Type": "application/json"}
    for content in (b'{"rows": [', b'{"rows": "\xff"}', b"[" * 20_000, b"{}", b""):
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic dXNlcjpwdw=="}):
            answer = client.post("/v1/churn/score", content=content, headers={**as_json, **headers})
            assert answer.status_code == 401, (content[:20], headers, answer.text)
            assert answer.json()["detail"] in (
                "invalid bearer token",
                "missing bearer token: send `Authorization: Bearer <token>`",
            )
    streamed = client.post(  # chunked, over the limit: refused for the token before it is read
        "/v1/churn/score", content=(b"x" * 4096 for _ in range(20)), headers=as_json
    )
    assert streamed.status_code == 401
    assert client.post("/v1/fraud/score", content=b"{", headers=as_json).status_code == 401
    assert client.get("/v1/fraud/model").status_code == 401


@pytest.mark.parametrize(
    ("content", "kind", "message"),
    [
        (
            b'{"rows": [{"gender": "\xff"}]}',
            "json_invalid",
            "not UTF-8 text, as JSON must be: byte 0xff at position 22",
        ),
        (b'{"rows": "\xc3"}', "json_invalid", "not UTF-8 text, as JSON must be: byte 0xc3 at position 10"),
        (
            b'{"rows": ' + b"[" * 20_000 + b"]" * 20_000 + b"}",
            "json_too_deep",
            "nests arrays or objects too deeply",
        ),
        (b'{"a": ' * 5_000, "json_too_deep", "nests arrays or objects too deeply"),
    ],
)
def test_a_body_that_is_not_utf8_or_nests_too_deep_is_422_naming_why(client, content, kind, message):
    """Issue #23, item 10: both were a bare 400 the error table did not list."""
    answer = client.post(
        "/v1/churn/score", content=content, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert answer.status_code == 422
    [error] = answer.json()["errors"]
    assert (error["row"], error["field"], error["type"]) == (None, None, kind)
    assert message in error["message"] and message in answer.json()["detail"]


def test_a_malformed_body_is_refused(client, request_rows):
    not_json = client.post(
        "/v1/churn/score", content=b'{"rows": [', headers={**AUTH, "Content-Type": "application/json"}
    )
    assert not_json.status_code == 422
    assert not_json.json()["errors"][0]["type"] == "json_invalid"
    assert client.post("/v1/churn/score", json=[request_rows[0]], headers=AUTH).status_code == 422
    empty = score(client, [])
    assert (empty.status_code, empty.json()["errors"][0]["field"]) == (422, "rows")
    too_many = score(client, request_rows[:21])  # max_rows is 20 here
    assert (too_many.status_code, too_many.json()["errors"][0]["type"]) == (422, "too_long")


def test_a_body_over_the_limit_is_413_declared_or_streamed(client, request_rows):
    big = json.dumps({"rows": request_rows[:20] * 10}).encode()
    assert len(big) > 50_000
    as_json = {**AUTH, "Content-Type": "application/json"}
    declared = client.post("/v1/churn/score", content=big, headers=as_json)
    assert declared.status_code == 413
    assert declared.json() == {"detail": "request body over the limit of 50000 bytes"}
    streamed = client.post(
        "/v1/churn/score",
        content=(big[i : i + 4096] for i in range(0, len(big), 4096)),  # chunked: no Content-Length
        headers=as_json,
    )
    assert streamed.status_code == 413


def test_an_unknown_use_case_is_404(client, request_rows):
    answer = client.post("/v1/fraud/score", json={"rows": request_rows[:1]}, headers=AUTH)
    assert (answer.status_code, answer.json()) == (404, {"detail": "no use case 'fraud'; served: ['churn']"})
    assert client.get("/v1/fraud/model", headers=AUTH).status_code == 404


def test_the_model_route_says_what_is_served_and_since_when(client):
    info = client.get("/v1/churn/model", headers=AUTH).json()
    detail = info["detail"]
    assert (info["version"], info["sha256"], detail["family"]) == (1, "a" * 64, "logistic_regression")
    assert {m["metric"]: m["value"] for m in detail["metrics"]} == {"roc_auc": 0.84, "accuracy": 0.8}
    assert info["promoted_at"] == "2026-01-01T00:00:00Z"
    assert info["served_since"] >= info["promoted_at"]
    assert (info["engine"], info["problem"], detail["trained_as_of"]) == ("fast", None, "2025-03-01")


def test_no_champion_is_503_with_the_reason(client, service, source, request_rows):
    source.current = None
    service.refresh()
    answer = score(client, request_rows[:1])
    assert answer.status_code == 503
    assert answer.json()["detail"].startswith("churn: no champion: no churn model has passed the gate")
    assert client.get("/v1/churn/model", headers=AUTH).status_code == 503
    health = client.get("/health").json()
    assert health == {
        "status": "degraded",
        "use_cases": {"churn": {"serving": False, "version": None, "reason": "no champion"}},
    }


def test_health_is_open_and_says_what_is_served_naming_no_path(client, service, source, request_rows):
    """Issue #23, item 10: /health showed the model file's full path on a load failure; it says serving
    or not, the version and a short reason, and the whole story stays behind the token."""
    assert client.get("/health").json() == {
        "status": "ok",
        "use_cases": {"churn": {"serving": True, "version": 1, "reason": None}},
    }
    source.current, source.broken = entry(3, "c" * 64), {3}
    service.refresh()
    health = client.get("/health")
    assert health.json() == {
        "status": "ok",
        "use_cases": {"churn": {"serving": True, "version": 1, "reason": "champion v3 not loaded"}},
    }
    assert "/" not in health.text.replace("/health", "")
    problem = client.get("/v1/churn/model", headers=AUTH).json()["problem"]
    assert problem.startswith("champion v3 not loaded: ") and "/lake/models/churn/v3.skops" in problem


def test_a_moved_alias_is_followed_and_a_bad_file_keeps_the_verified_model(
    client, service, source, request_rows
):
    source.current = entry(2, "b" * 64)
    service.refresh()
    assert score(client, request_rows[:1]).json()["model_version"] == 2
    source.current, source.broken = entry(3, "c" * 64), {3}
    service.refresh()
    answer = score(client, request_rows[:1])
    assert (answer.status_code, answer.json()["model_version"]) == (200, 2)
    info = client.get("/v1/churn/model", headers=AUTH).json()
    assert info["version"] == 2 and info["problem"].startswith("champion v3 not loaded: churn v3 (file://")
    assert "checksum mismatch" in info["problem"]
    source.current = entry(2, "b" * 64)
    service.refresh()
    assert client.get("/v1/churn/model", headers=AUTH).json()["problem"] is None


def test_a_champion_that_fails_to_load_at_start_is_503(spec, source, request_rows):
    source.broken = {1}
    app = create_app(ScoringService([spec], source), TOKEN, ServingSettings())
    with TestClient(app) as client:
        answer = score(client, request_rows[:1])
    assert answer.status_code == 503
    assert answer.json()["detail"].startswith("churn: champion v1 not loaded: churn v1 (file://")


def test_the_openapi_document_describes_each_use_cases_rows(client):
    document = client.get("/openapi.json").json()
    assert {"/health", "/v1/churn/score", "/v1/{use_case}/model"} == set(document["paths"])
    schemas = document["components"]["schemas"]
    row = schemas["ChurnRow"]
    assert row["additionalProperties"] is False
    assert set(row["required"]) == set(get_features())
    assert row["properties"]["Contract"]["enum"] == ["Month-to-month", "One year", "Two year"]
    assert row["properties"]["tenure"]["maximum"] == 1200
    assert row["properties"]["SeniorCitizen"]["enum"] == [0, 1]
    post = document["paths"]["/v1/churn/score"]["post"]
    assert post["security"] == [{"token": []}]
    assert {"200", "401", "404", "413", "422", "503"} <= set(post["responses"])


def get_features() -> tuple[str, ...]:
    from include.usecases.spec import get_spec

    return get_spec("churn").features.all


def test_no_token_no_service(spec, source, monkeypatch):
    with pytest.raises(ValueError, match="does not score anonymously"):
        create_app(ScoringService([spec], source), "", ServingSettings())
    monkeypatch.delenv("PLATFORM_SERVING_TOKEN", raising=False)
    settings = ServingSettings(token_conn_id="serving_unit_test")
    with pytest.raises(SettingsError, match="no bearer token"):
        settings.bearer_token()
    monkeypatch.setenv("AIRFLOW_CONN_SERVING_UNIT_TEST", '{"conn_type": "http", "password": "from-conn"}')
    assert settings.bearer_token() == "from-conn"
    assert (
        ServingSettings(token_conn_id="nothing_here", token="from-setting").bearer_token() == "from-setting"
    )
