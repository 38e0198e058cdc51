"""The same Airflow on SQLite metadata (the demo's setup), kept to what SQLite supports under a scheduler.

Measured here with Airflow 3.3.2: creating a backfill through REST while the scheduler runs works for a
first small backfill, but a second one (reprocess `completed`, 21 days) answered 503 "Database is locked.
Backfill creation is not supported on SQLite under concurrent access" and the scheduler then died on a
FOREIGN KEY error inserting task instances. So, as in the demo, the backfill is created with the CLI
before Airflow starts; REST triggers while it runs are fine.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tools.demo.airflow_api import airflow_cli, wait_for_backfill
from tools.reliability.airflow_world import Platform, days, prepare, running, succeeded

pytestmark = pytest.mark.e2e

FIRST, LAST = "2025-03-01", "2025-03-05"


@pytest.fixture(scope="module")
def sqlite_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """Airflow and the platform's tables on SQLite, a backfill of FIRST..LAST queued before it starts."""
    home = tmp_path_factory.mktemp("sqlite")
    env = prepare(home, f"sqlite:///{home / 'airflow.db'}", f"sqlite:///{home / 'platform.db'}")
    cli_log = home / "logs" / "cli.log"
    airflow_cli(["dags", "reserialize"], env, cli_log)
    backfill = ["backfill", "create", "--dag-id", "churn_ingest", "--from-date", FIRST, "--to-date", LAST]
    airflow_cli(backfill, env, cli_log)
    with running(home, env, ("churn_ingest",)) as platform:
        yield platform


def test_a_cli_backfill_and_a_rest_trigger_ingest_their_days(sqlite_platform, expected_rows):
    platform = sqlite_platform
    manual = platform.trigger("churn_ingest", {"ds": "2025-02-10"})
    [backfill] = platform.api.get("/backfills?dag_id=churn_ingest")["backfills"]
    wait_for_backfill(platform.api, backfill["id"], timeout=300)
    assert platform.wait("churn_ingest", [manual]) == {manual: "success"}
    assert succeeded(platform.backfill_runs("churn_ingest", FIRST, LAST), FIRST, LAST)
    records, partitions = platform.ingest_records(), platform.partitions()
    assert records["2025-02-10"]["run_id"] == manual
    for ds in [*days(FIRST, LAST), "2025-02-10"]:
        assert partitions[ds] == ["part-0.parquet"]
        assert records[ds]["rows_written"] == expected_rows[ds] == len(platform.partition_rows(ds))
