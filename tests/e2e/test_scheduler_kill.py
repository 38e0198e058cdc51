"""Fault: the scheduler crashes mid-backfill and is restarted (issue #12, "faults").

Its whole process group is SIGKILLed, so the ingest tasks its LocalExecutor was running die with it;
the restarted scheduler marks the dead job failed, resets its orphaned task instances and runs them
again. The backfill must end as an undisturbed one did: one partition and one run record per day,
the same rows, the same figures.
"""

from __future__ import annotations

import datetime as dt
import time

import pyarrow.parquet as pq
import pytest

from include.demo.airflow_api import create_backfill, wait_for_backfill
from tests.e2e.conftest import days, succeeded

pytestmark = pytest.mark.e2e

DAYS = ("2025-01-06", "2025-01-15")  # no other e2e test ingests these days
# The restarted scheduler looks for orphaned tasks every 5 s instead of every 5 minutes.
RESTART = {"AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "5"}
VOLATILE = ("run_id", "recorded_at")


def outcome(platform) -> dict[str, tuple[dict, object]]:
    """Each day's run record (without its run id and time) and its partition, rows sorted."""
    records = platform.ingest_records()
    result = {}
    for ds in days(*DAYS):
        assert platform.partitions()[ds] == ["part-0.parquet"]
        path = platform.home / "lake" / "raw" / "churn" / f"ds={ds}" / "part-0.parquet"
        table = pq.read_table(path).sort_by("customerID")
        result[ds] = ({k: v for k, v in records[ds].items() if k not in VOLATILE}, table)
    return result


def redone_runs(platform, since: str) -> dict[str, str]:
    """The state of each run of DAYS that started again after `since` (an ISO time), by day."""
    runs = platform.backfill_runs("churn_ingest", *DAYS)
    return {ds: r["state"] for ds, r in runs.items() if (r.get("start_date") or "") > since}


def test_a_scheduler_killed_mid_backfill_and_restarted_gives_the_undisturbed_result(pg_platform):
    platform = pg_platform
    assert succeeded(platform.backfill("churn_ingest", *DAYS), *DAYS)
    undisturbed = outcome(platform)

    since = dt.datetime.now(dt.UTC).isoformat()
    backfill = create_backfill(platform.api, "churn_ingest", *DAYS, reprocess="completed", max_active_runs=2)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        states = redone_runs(platform, since)
        if list(states.values()).count("success") >= 2 and "running" in states.values():
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"the backfill did not get going: {states}")
    assert list(states.values()).count("success") < len(days(*DAYS)), "killed too late: all done"

    platform.airflow.crash("scheduler")
    platform.airflow.restart("scheduler", **RESTART)
    wait_for_backfill(platform.api, backfill["id"], timeout=600)
    platform.airflow.check_running()
    log = platform.airflow.log_file("scheduler").read_text()
    assert "orphaned TaskInstances" in log, "the restarted scheduler reset no task: nothing was in flight"

    assert succeeded(platform.backfill_runs("churn_ingest", *DAYS), *DAYS)
    after = outcome(platform)
    for ds in days(*DAYS):
        assert after[ds][0] == undisturbed[ds][0], ds
        assert after[ds][1].equals(undisturbed[ds][1]), ds
