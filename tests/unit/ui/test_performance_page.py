"""The Performance page: each matured scored day's realised figure with its interval against the
expectation, coverage and decay, the outcome ingests and the decay requests; the same in its API."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import sqlalchemy as sa
import yaml
from fastapi.testclient import TestClient

from include.platform.day_swap import replace_rows
from include.platform.schema import upgrade
from include.platform.tables import outcome_runs, realised_performance, retrain_requests
from include.ui.app import platform_db
from include.ui.auth import spec_named
from include.usecases.spec import SPEC_DIR
from tests.unit.ui.test_api import APP, auth_manager, token  # noqa: F401 (fixtures)
from tools.testkit import write_changed_spec

FIRST = dt.date(2025, 3, 1)
OUTCOMES = {
    "source": {
        "name": "outcomes",
        "kind": "files",
        "conn_id": "churn_source_files",
        "prefix": "outcomes/ds={ds}/",
        "columns": ["customerID", "Churn"],
    },
    "maturity_days": 14,
}


def realised(n: int, estimate: float, decayed: bool) -> dict:
    return {
        "use_case": "churn",
        "ds": FIRST + dt.timedelta(days=n),
        "model_version": 1,
        "evaluated_through": FIRST + dt.timedelta(days=n + 14),
        "rows_scored": 80,
        "rows_matched": 60,
        "primary_metric": "roc_auc",
        "metrics": {"roc_auc": {"estimate": estimate, "lower": estimate - 0.05, "upper": estimate + 0.05}},
        "expected": {"roc_auc": 0.84},
        "decayed": decayed,
        "run_id": "evaluate",
    }


@pytest.fixture(scope="module")
def pages(tmp_path_factory, auth_manager):  # noqa: F811
    folder = tmp_path_factory.mktemp("perf")
    engine = sa.create_engine(f"sqlite:///{folder / 'platform.db'}")
    upgrade(engine)
    with engine.begin() as conn:
        for n in range(10):
            row = realised(n, 0.84 if n < 7 else 0.70, decayed=n >= 7)
            replace_rows(conn, realised_performance, {"use_case": "churn", "ds": row["ds"]}, [row])
        decay = {"use_case": "churn", "ds": FIRST + dt.timedelta(days=23)}
        replace_rows(
            conn,
            retrain_requests,
            decay,
            [{**decay, "run_id": "e", "features": {"roc_auc": 0.7}, "reason": "decay"}],
        )
        observed = {"use_case": "churn", "ds": FIRST + dt.timedelta(days=2)}
        record = {"run_id": "o", "rows_read": 61, "rows_kept": 60, "rows_quarantined": 1}
        reasons = {"customerID: duplicate id": 1}
        replace_rows(conn, outcome_runs, observed, [{**observed, **record, "quarantine_reasons": reasons}])
    APP.dependency_overrides[platform_db] = lambda: engine
    client = TestClient(APP)
    client.cookies.set("_token", token(auth_manager, "viewer"))
    yield client, folder
    APP.dependency_overrides.clear()


@pytest.fixture(autouse=True)
def fresh_specs():
    """The page reads a use case's spec once per process: each test reads its own."""
    spec_named.cache_clear()
    yield
    spec_named.cache_clear()


def test_the_page_draws_every_matured_day_against_its_expectation(pages, monkeypatch):
    client, folder = pages
    monkeypatch.setenv("PLATFORM_SPEC_DIR", str(write_changed_spec(folder / "specs", {"outcomes": OUTCOMES})))
    page = client.get("/churn/performance")
    assert page.status_code == 200, page.text
    assert re.search(r'class="chart realised-chart"[^>]*data-days="10"', page.text)
    assert page.text.count('class="realised decayed"') == 3
    assert page.text.count("<tr data-ds=") == 10 + 1  # the days, and the one day of observation
    assert "customerID: duplicate id: 1" in page.text and "75.0%" in page.text
    body = client.get("/api/use-cases/churn/performance").json()
    assert body["maturity_days"] == 14 and len(body["days"]) == 10
    assert [d["decayed"] for d in body["days"]] == [False] * 7 + [True] * 3
    assert [r["reason"] for r in body["decays"]] == ["decay"]


def test_a_use_case_without_outcomes_says_so(pages, monkeypatch):
    client, folder = pages
    spec = yaml.safe_load((SPEC_DIR / "churn.yaml").read_text())
    del spec["outcomes"]
    (folder / "no-outcomes").mkdir(exist_ok=True)
    (folder / "no-outcomes" / "churn.yaml").write_text(yaml.safe_dump(spec))
    monkeypatch.setenv("PLATFORM_SPEC_DIR", str(folder / "no-outcomes"))
    page = client.get("/churn/performance")
    assert page.status_code == 200 and "declares no <code>outcomes</code>" in page.text
