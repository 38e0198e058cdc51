"""A real Airflow for the end-to-end tests: scheduler, dag-processor, triggerer and API server on loopback.

One Airflow per metadata database (PostgreSQL for the session, SQLite for its module), each in a private
temporary home with the demo's seeded sources (SQLite table, folder bucket), a folder lake and the
platform's tables (PostgreSQL or SQLite), built and started by `tools/reliability/airflow_world.py`
(the reliability suite's faults run the same Airflow). `make test-e2e` runs them; `make test` leaves
them out.
In CI (`CI` set) a missing PostgreSQL, Chromium or Playwright fails the run instead of skipping it.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from include.usecases.spec import get_spec
from tests.conftest import REPO, postgres_database, unavailable
from tools.demo.seed import demo_dates, load_telco, split_sources
from tools.reliability.airflow_world import Platform, prepare, running

CHROMIUM = "/usr/bin/chromium"
AIRFLOW = str(Path(sys.executable).parent / "airflow")
ARTIFACTS = REPO / ".e2e-artifacts"
# The PostgreSQL Airflow's OpenLineage events (a file transport), under its home.
LINEAGE_FILE = "lineage.jsonl"


@pytest.fixture(scope="session")
def expected_rows() -> dict[str, int]:
    """How many customers the demo's seed puts on each day: what a clean ingest writes."""
    snapshots, _ = split_sources(get_spec("churn"), load_telco(), demo_dates())
    return {str(day): n for day, n in snapshots["snapshot_date"].value_counts().items()}


@pytest.fixture(scope="session")
def pg_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """Airflow on a fresh PostgreSQL metadata database, the platform's tables in another one.

    Its home (component logs under `logs/`, task logs under `airflow/logs/`, the OpenLineage events
    in LINEAGE_FILE) stays in pytest's temporary folder for the last three sessions.
    """
    with postgres_database("e2e_airflow") as metadata, postgres_database("e2e_platform") as platform_db:
        home = tmp_path_factory.mktemp("postgres")
        env = prepare(
            home,
            metadata.render_as_string(hide_password=False),
            platform_db.render_as_string(hide_password=False),
        )
        lineage = {"type": "file", "log_file_path": str(home / LINEAGE_FILE), "append": True}
        env["AIRFLOW__OPENLINEAGE__TRANSPORT"] = json.dumps(lineage)
        with running(home, env, ("churn_ingest", "churn_train", "churn_score")) as platform:
            yield platform


@pytest.fixture
def page():
    """A headless Chromium page; Playwright's own browser download is never used."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("Playwright is not installed (requirements-dev.txt)")
    if not shutil.which(CHROMIUM):
        unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        yield browser.new_page(viewport={"width": 1400, "height": 900})
        browser.close()
