"""The version page shows the model card: its headings, lists and tables, every text escaped."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from include.platform.schema import upgrade
from include.registry.registry import Registry, TrainingRun
from include.training.gate import GateDecision
from include.ui.app import platform_db
from tests.unit.ui.test_api import APP, auth_manager, token  # noqa: F401 (fixtures)
from tools.testkit import version_of_day

DS = dt.date(2025, 3, 31)
HOSTILE = "<script>alert(1)</script> | not a cell"


@pytest.fixture(scope="module")
def page(tmp_path_factory, auth_manager):  # noqa: F811
    engine = sa.create_engine(f"sqlite:///{tmp_path_factory.mktemp('ui-card') / 'platform.db'}")
    upgrade(engine)
    registry = Registry(engine)
    version = registry.register(
        version_of_day(
            "churn",
            "run-1",
            DS,
            family="logistic_regression",
            artifact_uri="file:///m",
            sha256="1" * 64,
            metrics={"roc_auc": 0.8, "accuracy": 0.79},
        )
    )
    coverage = {
        "first": "2025-03-31",
        "last": "2025-03-31",
        "read": ["2025-03-31"],
        "withdrawn": [],
        "missing": [],
    }
    registry.record_training_run(
        TrainingRun(
            "churn",
            "run-1",
            DS,
            1,
            "registered",
            "f" * 64,
            window_coverage={**coverage, "sha256": {"2025-03-31": "d" * 64}},
        )
    )
    registry.record_decision(version, None, GateDecision(False, (HOSTILE,), version.metrics, None))
    APP.dependency_overrides[platform_db] = lambda: engine
    client = TestClient(APP)
    client.cookies.set("_token", token(auth_manager, "viewer"))
    yield client
    APP.dependency_overrides.clear()


def test_the_version_page_shows_the_cards_headings_and_tables(page):
    response = page.get("/churn/versions/1")
    assert response.status_code == 200, response.text
    text = response.text
    assert "<h2>Model card</h2>" in text and "<code>models/churn/cards/v1.md</code>" in text
    assert "<h3>churn v1: model card</h3>" in text
    for heading in ("Intended use", "Training data", "Holdout metrics", "Fairness", "Gate decision"):
        assert f"<h4>{heading}</h4>" in text
    assert f"<tr><td>2025-03-31</td><td><code>{'d' * 64}</code></td></tr>" in text


def test_the_card_is_escaped_on_the_page_and_the_api_names_its_key(page):
    text = page.get("/churn/versions/1").text
    assert "<script>alert(1)</script>" not in text
    assert "<li>&lt;script&gt;alert(1)&lt;/script&gt; | not a cell</li>" in text
    body = page.get("/api/use-cases/churn/versions/1").json()
    assert body["card_key"] == "models/churn/cards/v1.md"
    assert "card" not in body  # as the scoring service's model route, which has no spec to write it
