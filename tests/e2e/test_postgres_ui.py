"""The trigger form in Airflow's real UI, driven by headless Chromium (Debian's, through Playwright)."""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest

from tests.e2e.conftest import ARTIFACTS
from tools.reliability.airflow_world import PASSWORD, USER

pytestmark = pytest.mark.e2e

DS = "2025-03-28"


def test_the_trigger_form_runs_churn_ingest_for_the_day_typed_in(pg_platform, page, expected_rows):
    url = pg_platform.airflow.url
    page.goto(url + "/")
    page.get_by_label("Username").fill(USER)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(url + "/")

    page.goto(url + "/dags/churn_ingest")
    page.get_by_role("button", name="Trigger Dag").click()
    heading = page.get_by_role("heading", name=re.compile("Trigger Dag"))
    dialog = page.get_by_role("dialog").filter(has=heading)
    # The form's logical date defaults to now, after the DAG's end date here: such a run succeeds with
    # no task instance (see test_postgres.py). Cleared, the run has no logical date and `ds` decides.
    dialog.get_by_test_id("datetime-input").click()
    page.get_by_role("button", name="Clear start date").click()
    heading.click()  # closes the date picker
    # The form field of param `ds` (its <label> does not point at the input, so no get_by_label).
    dialog.locator("#element_ds").fill(DS)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "ui-1-trigger-form.png")
    dialog.get_by_role("button", name="Trigger", exact=True).click()

    page.wait_for_url(re.compile(r"/dags/churn_ingest/runs/"))
    run_id = unquote(page.url.rsplit("/runs/", 1)[1])
    assert pg_platform.wait("churn_ingest", [run_id]) == {run_id: "success"}
    page.reload()  # the run's page, with its task instances
    page.get_by_role("row", name=re.compile(r"^ingest Success")).wait_for()
    page.screenshot(path=ARTIFACTS / "ui-2-run-succeeded.png")

    run = pg_platform.api.get(f"/dags/churn_ingest/dagRuns/{run_id}")
    assert (run["triggered_by"], run["logical_date"], run["conf"]) == ("ui", None, {"ds": DS})
    assert pg_platform.partitions()[DS] == ["part-0.parquet"]
    record = pg_platform.ingest_records()[DS]
    assert (record["run_id"], record["rows_written"]) == (run_id, expected_rows[DS])
