"""Every page on a year of daily runs and 50 versions: the content is all there, and the server time
of each page is measured and written to `.e2e-artifacts/ui-page-times.json` (reported, not asserted)."""

from __future__ import annotations

import json
import logging
import statistics
import time

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from include.platform.schema import upgrade
from include.ui.app import create_app, platform_db
from include.ui.auth import current_user
from include.usecases.spec import get_spec
from tests.e2e.conftest import ARTIFACTS
from tests.unit.ui import platform_data

log = logging.getLogger(__name__)
DAYS, VERSIONS, REPEATS = 365, 50, 5
PAGES = ("/churn/", "/churn/versions/49", "/churn/gate", "/churn/scoring", "/churn/ingest")


@pytest.fixture(scope="module")
def year(tmp_path_factory, airflow_db):
    from airflow.api_fastapi.app import init_auth_manager, purge_cached_app
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    init_auth_manager()
    engine = sa.create_engine(f"sqlite:///{tmp_path_factory.mktemp('year') / 'platform.db'}")
    upgrade(engine)
    platform_data.fill(engine, get_spec("churn"), versions=VERSIONS, days=DAYS)
    app = create_app()
    app.dependency_overrides[platform_db] = lambda: engine
    # The token check is Airflow's and tested in test_api.py; here only the page's own work is timed.
    app.dependency_overrides[current_user] = lambda: SimpleAuthManagerUser(username="v", role="viewer")
    yield TestClient(app)
    purge_cached_app()


def test_each_page_of_a_year_of_runs_renders_whole_and_is_timed(year) -> None:
    times = {}
    for page in PAGES:
        assert year.get(page).status_code == 200  # warm: imports and the first query plans
        samples = []
        for _ in range(REPEATS):
            started = time.perf_counter()
            response = year.get(page)
            samples.append(time.perf_counter() - started)
        times[page] = {"median_ms": round(statistics.median(samples) * 1000, 1), "bytes": len(response.text)}
    scoring, overview = year.get("/churn/scoring").text, year.get("/churn/").text
    features = len(get_spec("churn").features.all)
    assert scoring.count('<rect class="cell ') == DAYS * features
    assert scoring.count('<svg class="chart histogram"') == DAYS
    assert overview.count("<tr data-version=") == VERSIONS
    assert year.get("/churn/ingest").text.count("<tr data-ds=") == DAYS
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "ui-page-times.json").write_text(json.dumps(times, indent=2))
    log.info("server time per page (%d days, %d versions): %s", DAYS, VERSIONS, times)
