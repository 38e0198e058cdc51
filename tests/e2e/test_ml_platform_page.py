"""The ML platform page in Airflow's real UI: log in, open the navigation entry, check each page's
charts against the JSON API, and screenshot every page (`.e2e-artifacts/ml-page-*.png`).

Only Airflow's API server runs (the page reads the platform's tables, not DAG runs), on a platform
database filled by `tests/unit/ui/platform_data.py`, or on the one `PLATFORM_UI_E2E_DB` names (a
SQLite file: `.demo/platform.db` after `make demo` gives the README's screenshots).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from include.platform.schema import upgrade
from include.ui import NAV_ROUTE
from include.usecases.spec import get_spec
from tests.conftest import REPO, free_port
from tests.e2e.conftest import AIRFLOW, ARTIFACTS
from tests.unit.ui import platform_data
from tools.demo.airflow_api import airflow_cli
from tools.examples.seed import example_spec, hotel_rows, hpc_rows
from tools.reliability.airflow_world import PASSWORD, USER

pytestmark = pytest.mark.e2e


@contextlib.contextmanager
def serving(home: Path, platform_db: Path, **extra_env: str) -> Iterator[str]:
    """Airflow's API server alone, with the plugin, on a free port, over `platform_db`; its URL."""
    (home / "passwords.json").write_text(json.dumps({USER: PASSWORD}))
    port = free_port()
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PLATFORM_"))}
    env = {
        **inherited,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "PYTHONPATH": str(REPO),
        "AIRFLOW_CONN_PLATFORM_DB": json.dumps({"conn_type": "sqlite", "host": str(platform_db)}),
        **extra_env,
    }
    airflow_cli(["db", "migrate"], env, home / "cli.log")
    with (home / "api-server.log").open("ab") as out:
        server = subprocess.Popen(
            [AIRFLOW, "api-server"], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert server.poll() is None, (home / "api-server.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(url + "/api/v2/monitor/health", timeout=2):
                    break
            except OSError:
                time.sleep(1)
        else:
            pytest.fail(f"the API server was not up after 120 s; see {home / 'api-server.log'}")
        yield url
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def api_server(tmp_path_factory):
    """The server over churn's history: `platform_data.fill`'s, or `PLATFORM_UI_E2E_DB`'s."""
    home = tmp_path_factory.mktemp("ml_page")
    platform_db = Path(os.environ.get("PLATFORM_UI_E2E_DB") or home / "platform.db")
    if "PLATFORM_UI_E2E_DB" not in os.environ:
        engine = sa.create_engine(f"sqlite:///{platform_db}")
        upgrade(engine)
        platform_data.fill(engine, get_spec("churn"), versions=3, days=31)
        engine.dispose()
    with serving(home, platform_db) as url:
        yield url


@pytest.fixture(scope="module")
def task_server(tmp_path_factory):
    """The server over the worked examples (a regression and a multiclass use case), each with a
    dummy champion and a gradient boosting challenger trained on its real rows."""
    home = tmp_path_factory.mktemp("ml_page_tasks")
    specs = home / "specs"
    specs.mkdir()
    engine = sa.create_engine(f"sqlite:///{home / 'platform.db'}")
    upgrade(engine)
    for name, rows in (("hotel_rates", hotel_rows), ("hpc_jobs", hpc_rows)):
        shutil.copy(example_spec(name), specs / f"{name}.yaml")
        frame = rows().sample(n=4000, random_state=0).reset_index(drop=True)
        platform_data.fill_task_example(engine, get_spec(name, specs), frame, dt.date(2025, 3, 1))
    engine.dispose()
    with serving(home, home / "platform.db", PLATFORM_SPEC_DIR=str(specs)) as url:
        yield url


def sign_in(page, url: str) -> None:
    page.goto(url + "/")
    page.get_by_label("Username").fill(USER)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(url + "/")


def shot(browser_page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    browser_page.screenshot(path=ARTIFACTS / f"ml-page-{name}.png")


def test_the_ml_platform_page_draws_what_the_api_serves(api_server, page) -> None:
    sign_in(page, api_server)
    api = page.request  # the browser's session: the `_token` cookie the iframe sends too

    def get(path: str):
        response = api.get(f"{api_server}/ml/api/use-cases/churn/{path}")
        assert response.status == 200, response.text()
        return response.json()

    page.get_by_role("link", name="ML platform").click()  # the navigation entry the plugin adds
    page.wait_for_url(re.compile(rf"/plugin/{NAV_ROUTE}"))  # Airflow's route of the external view
    frame = page.frame_locator("iframe")
    frame.get_by_role("link", name="churn").click()

    champion = check_overview(frame, get("overview"))
    shot(page, "1-overview")
    frame.locator(f'#versions a[href$="/versions/{champion}"]').click()
    check_version(frame, get(f"versions/{champion}"))
    shot(page, "2-version")
    title = frame.locator("#model-card h3").first
    assert title.inner_text() == f"churn v{champion}: model card"
    title.evaluate("heading => heading.scrollIntoView({block: 'start'})")
    shot(page, "9-model-card")
    frame.get_by_role("link", name="Gate decisions").click()
    check_gate(frame, get("gate-decisions")["decisions"])
    shot(page, "3-gate")
    frame.get_by_role("link", name="Scoring").click()
    check_scoring(frame, get("scoring"))
    shot(page, "4-scoring")
    frame.get_by_role("link", name="Ingest").click()
    check_ingest(frame, get("ingest"))
    shot(page, "5-ingest")
    frame.get_by_role("link", name="Performance").click()
    check_performance(frame, get("performance"))
    shot(page, "8-performance")


def check_overview(frame, overview: dict) -> int:
    """The champion, the timeline, every version; the champion's number."""
    champion = overview["champion"]["version"]
    frame.locator("#champion").wait_for()
    assert frame.locator("#champion").get_attribute("data-version") == str(champion)
    assert frame.locator("tr[data-version]").count() == len(overview["versions"])
    assert frame.locator("svg.timeline g.span").count() == len(overview["champions"])
    return champion


def check_version(frame, version: dict) -> None:
    """Both curves, drawn from the stored points, and the confusion matrix at the threshold."""
    frame.locator("svg.curve-chart").first.wait_for()
    candidate = frame.locator("svg.curve-chart").first.locator("polyline.candidate")
    assert candidate.get_attribute("data-points") == str(len(version["curves"]["roc"]["fpr"]))
    if version["champion_curves"]:
        judged = frame.locator("svg.curve-chart").first.locator("polyline.champion")
        assert judged.get_attribute("data-points") == str(len(version["champion_curves"]["roc"]["fpr"]))
        assert frame.locator("polyline.champion").count() == 2  # ROC and precision-recall
    confusion = frame.locator("#confusion")
    for cell, count in version["curves"]["confusion"].items():
        assert confusion.get_attribute(f"data-{cell}") == str(count)
    assert frame.locator("#trials tr[data-trial]").count() == len(version["trials"])


def check_gate(frame, decisions: list[dict]) -> None:
    """One section per decision, both models' metrics."""
    frame.locator("section.decision").first.wait_for()
    assert frame.locator("section.decision").count() == len(decisions)
    first = frame.locator("section.decision").first
    assert first.get_attribute("data-candidate") == str(decisions[0]["candidate_version"])
    assert first.locator("tr[data-metric]").count() == len(decisions[0]["metrics"])
    assert first.locator("tr[data-slice]").count() == len(decisions[0]["slices"])
    primary = next((m for m in decisions[0]["metrics"] if m["gain"] is not None), None)
    if primary is not None:  # the paired gain and its bounds, as the API gives them
        row = first.locator(f'tr[data-metric="{primary["metric"]}"]').inner_text()
        assert f"{primary['gain']:+.4f} [{primary['gain_lower']:+.4f}, {primary['gain_upper']:+.4f}]" in row


def check_scoring(frame, scoring: dict) -> None:
    """A row per scored day with its histogram; the heatmap's cells carry each PSI and grade."""
    heatmap = frame.locator("svg.heatmap")
    heatmap.wait_for()
    assert frame.locator("#scored-days tr[data-ds]").count() == len(scoring["days"])
    assert frame.locator("#scored-days svg.histogram").count() == len(scoring["days"])
    assert heatmap.locator("rect.cell").count() == len(scoring["drift"])
    cell = scoring["drift"][-1]
    drawn = heatmap.locator(f'rect[data-ds="{cell["ds"]}"][data-feature="{cell["feature"]}"]')
    assert drawn.get_attribute("data-psi") == f"{cell['psi']:.4f}"
    assert drawn.get_attribute("class") == f"cell {cell['level']}"


def check_performance(frame, performance: dict) -> None:
    """A row per matured day; the chart's days and decayed points as the API gives them."""
    frame.locator("#realised-days").wait_for()
    assert frame.locator("#realised-days tr[data-ds]").count() == len(performance["days"])
    if performance["days"]:
        chart = frame.locator("svg.realised-chart")
        assert chart.get_attribute("data-days") == str(len(performance["days"]))
        decayed = sum(d["decayed"] for d in performance["days"])
        assert chart.locator("circle.realised.decayed").count() == decayed


def check_ingest(frame, ingest: dict) -> None:
    """A row per ingested day, and the top quarantine reasons."""
    frame.locator("#ingested-days").wait_for()
    assert frame.locator("#ingested-days tr[data-ds]").count() == len(ingest["days"])
    if ingest["top_reasons"]:
        assert frame.locator("#quarantine-reasons tr").count() == len(ingest["top_reasons"]) + 1


def test_each_task_draws_its_own_pictures(task_server, page) -> None:
    """A regression version: predicted against actual, residuals against the prediction, the
    residuals' histogram and the calibration; a multiclass one: one-vs-rest ROC per class, the
    normalised confusion matrix and the per-class table; both pages screenshot."""
    sign_in(page, task_server)
    api = page.request
    for name, picture in (("hotel_rates", "6-regression"), ("hpc_jobs", "7-multiclass")):
        detail = api.get(f"{task_server}/ml/api/use-cases/{name}/versions/2").json()
        page.goto(f"{task_server}/ml/{name}/versions/2")
        curves = detail["curves"]
        if curves["kind"] == "regression":
            scatter = page.locator("svg.scatter-chart")
            scatter.first.wait_for()
            assert scatter.count() == 2
            points = str(len(curves["points"]["actual"]))
            assert [scatter.nth(i).get_attribute("data-points") for i in range(2)] == [points, points]
            assert page.locator("#calibration tr").count() == len(curves["calibration"]["rows"]) + 1
        else:
            page.locator("#confusion").wait_for()
            assert page.locator("#per-class tr[data-class]").count() == len(curves["classes"])
            assert page.locator("polyline[data-series]").count() == len(curves["roc"])
        assert page.locator("section.decision, p.passed, p.failed").count() >= 1
        shot(page, picture)
