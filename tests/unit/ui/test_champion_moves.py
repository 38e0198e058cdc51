"""Moving the champion by hand through the page's API: only a user who may edit the training DAG
may (403 naming the permission otherwise), the registry's rules answer 422 naming the rule, a
body that cannot be read is 422 too, and each move is an entry of the audit trail naming the user.
"""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from include.platform.schema import upgrade
from include.registry.registry import Registry
from include.ui.app import platform_db
from include.usecases.spec import get_spec
from tests.unit.ui import platform_data
from tests.unit.ui.test_api import APP, auth_manager, token  # noqa: F401 (fixtures)

MOVE = "/api/use-cases/churn/champion"


@pytest.fixture
def moves(tmp_path, auth_manager):  # noqa: F811
    """A fresh history (v1 and v3 champions in turn, v2 rejected); a client as a given role."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'platform.db'}")
    upgrade(engine)
    platform_data.fill(engine, get_spec("churn"), versions=3, days=3)
    APP.dependency_overrides[platform_db] = lambda: engine

    def client_as(role: str) -> TestClient:
        client = TestClient(APP)
        client.cookies.set("_token", token(auth_manager, role))
        return client

    yield Registry(engine), client_as
    APP.dependency_overrides.clear()


def test_a_viewer_may_not_move_the_champion(moves):
    registry, client_as = moves
    refused = client_as("viewer").post(MOVE, json={"version": 1, "kind": "rollback", "reason": "bad v3"})
    assert refused.status_code == 403
    assert (
        refused.json()["detail"]
        == "moving the champion of 'churn' needs edit access to the DAG 'churn_train'"
    )
    assert registry.champion("churn").version == 3


def test_an_admin_rolls_back_and_the_trail_names_them(moves):
    registry, client_as = moves
    before = registry.champion_history("churn")
    day = dt.date(2025, 6, 1)
    moved = client_as("admin").post(
        MOVE, json={"version": 1, "kind": "rollback", "reason": "v3 misbehaves", "ds": day.isoformat()}
    )
    assert moved.status_code == 201, moved.text
    assert moved.json()["entry"] == len(before) + 1 and moved.json()["actor"] == "u-admin"
    assert registry.champion("churn").version == 1
    assert registry.champion_history("churn")[: len(before)] == before  # the past untouched
    assert registry.champion_as_of("churn", day).version == 1
    assert registry.champion_as_of("churn", day - dt.timedelta(days=1)).version == 3
    assert registry.get("churn", 3).status == "retired"
    page = client_as("viewer").get("/churn/").text
    assert 'data-kind="rollback"' in page and "v3 misbehaves" in page and "u-admin" in page


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"version": 2, "kind": "promote", "reason": "try"}, "v2 neither passed its gate nor was champion"),
        ({"version": 3, "kind": "promote", "reason": "again"}, "v3 is already the champion"),
        ({"version": 1, "kind": "rollback", "reason": "x", "ds": "2025-01-02"}, "never rewrites a past day"),
        ({"version": 1, "kind": "rollback", "reason": ""}, "at least 1 character"),
        ({"version": 1, "kind": "steal", "reason": "x"}, "'promote' or 'rollback'"),
    ],
)
def test_a_move_the_rules_refuse_is_422_naming_the_rule(moves, body, says):
    registry, client_as = moves
    refused = client_as("admin").post(MOVE, json=body)
    assert refused.status_code == 422 and says in refused.text
    assert registry.champion("churn").version == 3


def test_a_forced_move_needs_force_and_says_so_in_the_trail(moves):
    registry, client_as = moves
    body = {"version": 2, "kind": "promote", "reason": "hotfix", "force": True, "ds": "2025-06-01"}
    assert client_as("admin").post(MOVE, json=body).status_code == 201
    assert registry.champion_history("churn")[-1].reason == "hotfix (forced)"


def test_a_body_that_is_not_json_text_is_422(moves):
    _, client_as = moves
    refused = client_as("admin").post(MOVE, content=b"\xff\xfe")
    assert refused.status_code == 422, refused.text
