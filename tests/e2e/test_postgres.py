"""The platform's pipelines driven through Airflow's REST API, on PostgreSQL (Airflow's and the platform's).

Each test uses its own days, so they do not depend on their order; the 21-day backfill `window` is
shared by the backfill tests and by training, whose smallest window is holdout (14) + 7 days.
"""

from __future__ import annotations

import datetime as dt

import pyarrow.parquet as pq
import pytest

from include.io.lake import PREDICTIONS_ZONE, RAW_ZONE, day_prefix, model_key, partition_key
from include.io.stores import LocalStore
from tests.e2e.conftest import LINEAGE_FILE
from tools.demo.airflow_api import AirflowApiError, create_backfill
from tools.demo.lineage import completed_runs, dataset_of, day_lineage
from tools.reliability.airflow_world import days, succeeded

pytestmark = pytest.mark.e2e

WINDOW = ("2025-03-01", "2025-03-21")


@pytest.fixture(scope="module")
def window(pg_platform) -> dict[str, dict]:
    """A REST backfill of churn_ingest over WINDOW, finished; its runs by day."""
    return pg_platform.backfill("churn_ingest", *WINDOW)


def test_a_trigger_ingests_the_day_its_ds_names_with_or_without_a_logical_date(pg_platform, expected_rows):
    platform = pg_platform
    with_date = platform.trigger("churn_ingest", {"ds": "2025-02-10"}, logical_date="2025-02-01T00:00:00Z")
    without_date = platform.trigger("churn_ingest", {"ds": "2025-02-11"})
    assert platform.wait("churn_ingest", [with_date, without_date]) == {
        with_date: "success",
        without_date: "success",
    }
    records, partitions = platform.ingest_records(), platform.partitions()
    for ds, run_id in (("2025-02-10", with_date), ("2025-02-11", without_date)):
        assert partitions[ds] == ["part-0.parquet"]
        assert records[ds]["run_id"] == run_id
        assert records[ds]["rows_written"] == expected_rows[ds] == len(platform.partition_rows(ds))
        assert records[ds]["rows_quarantined"] == {"snapshots": 0, "billing": 0}
    assert "2025-02-01" not in partitions  # the conf's ds wins over the logical date


def test_a_backfill_writes_one_partition_and_one_record_per_day(pg_platform, window, expected_rows):
    assert succeeded(window, *WINDOW)
    records, partitions = pg_platform.ingest_records(), pg_platform.partitions()
    for ds in days(*WINDOW):
        assert partitions[ds] == ["part-0.parquet"]
        assert records[ds]["run_id"] == window[ds]["dag_run_id"]
        assert records[ds]["rows_written"] == expected_rows[ds]


def test_rerunning_the_backfill_reprocesses_every_day_in_place(pg_platform, window, expected_rows):
    platform = pg_platform
    before, partitions_before = platform.ingest_records(), platform.partitions()
    rerun = platform.backfill("churn_ingest", *WINDOW, reprocess="completed")
    assert succeeded(rerun, *WINDOW)
    after = platform.ingest_records()
    assert platform.partitions() == partitions_before
    for ds in days(*WINDOW):
        ids = platform.partition_rows(ds)
        assert len(ids) == len(set(ids)) == expected_rows[ds]
        assert after[ds]["recorded_at"] > before[ds]["recorded_at"]
        unchanged = {k: v for k, v in after[ds].items() if k != "recorded_at"}
        assert unchanged == {k: v for k, v in before[ds].items() if k != "recorded_at"}


def test_a_backfill_and_another_run_of_the_same_day_at_once_leave_one_partition_and_record(
    pg_platform, expected_rows
):
    """A manual run naming D (no logical date: Airflow itself refuses two runs of one logical date) and
    a backfill over D-1..D+1, started together: 4 tasks, all within the parallelism of 4."""
    platform, ds = pg_platform, "2025-03-25"
    manual = platform.trigger("churn_ingest", {"ds": ds})
    backfill = platform.backfill("churn_ingest", "2025-03-24", "2025-03-26")
    assert platform.wait("churn_ingest", [manual]) == {manual: "success"}
    assert succeeded(backfill, "2025-03-24", "2025-03-26")
    spans = [
        platform.api.get(f"/dags/churn_ingest/dagRuns/{run_id}/taskInstances/ingest")
        for run_id in (manual, backfill[ds]["dag_run_id"])
    ]
    assert max(s["start_date"] for s in spans) < min(s["end_date"] for s in spans), "the runs did not overlap"
    records = platform.ingest_records()
    assert platform.partitions()[ds] == ["part-0.parquet"]
    assert records[ds]["run_id"] in (manual, backfill[ds]["dag_run_id"])
    ids = platform.partition_rows(ds)
    assert len(ids) == len(set(ids)) == records[ds]["rows_written"] == expected_rows[ds]


@pytest.mark.parametrize(
    ("dag_id", "conf", "message"),
    [
        ("churn_ingest", {"ds": "2025-13-45"}, "Invalid input for param ds: '2025-13-45' is not a 'date'"),
        ("churn_ingest", {"ds": "20250305"}, "Invalid input for param ds: '20250305' is not a 'date'"),
        ("churn_train", {"n_trials": 0}, "Invalid input for param n_trials: 0 is less than the minimum of 1"),
    ],
    ids=["ds-month-13", "ds-without-dashes", "n_trials-0"],
)
def test_an_invalid_param_is_refused_on_trigger_and_on_backfill_and_nothing_runs(
    pg_platform, dag_id, conf, message
):
    """Airflow 3.3 validates the conf against the DAG's params before creating anything: the trigger
    endpoint answers 400, the backfill endpoint 422, both with the param and the reason."""
    platform = pg_platform
    runs_before = platform.api.get(f"/dags/{dag_id}/dagRuns")["total_entries"]
    backfills_before = platform.api.get(f"/backfills?dag_id={dag_id}")["total_entries"]
    records_before, partitions_before = platform.ingest_records(), platform.partitions()
    with pytest.raises(AirflowApiError) as trigger:
        platform.trigger(dag_id, conf)
    assert trigger.value.status == 400
    assert message in str(trigger.value)
    with pytest.raises(AirflowApiError) as backfill:
        create_backfill(platform.api, dag_id, "2025-02-03", "2025-02-04", conf=conf)
    assert backfill.value.status == 422
    assert message in str(backfill.value)
    assert platform.api.get(f"/dags/{dag_id}/dagRuns")["total_entries"] == runs_before
    assert platform.api.get(f"/backfills?dag_id={dag_id}")["total_entries"] == backfills_before
    assert platform.ingest_records() == records_before
    assert platform.partitions() == partitions_before


def test_a_run_dated_after_the_dag_end_date_succeeds_without_running_anything(pg_platform):
    """What the UI's default logical date (now) does here, where `PLATFORM_DAG_END_DATE` ends the
    DAGs on the demo's last day: the run is created and marked successful with no task instance."""
    platform = pg_platform
    run_id = platform.trigger("churn_ingest", {"ds": "2025-03-27"}, logical_date="2026-01-01T00:00:00Z")
    assert platform.wait("churn_ingest", [run_id]) == {run_id: "success"}
    tis = platform.api.get(f"/dags/churn_ingest/dagRuns/{run_id}/taskInstances")
    assert tis["total_entries"] == 0
    assert "2025-03-27" not in platform.partitions()


@pytest.fixture(scope="module")
def champion(pg_platform, window) -> dict:
    """One training run as of the window's last day (small: one family, one trial); the registry."""
    pg_platform.run_dag(
        "churn_train",
        [WINDOW[1]],
        estimators=["logistic_regression"],
        n_trials=1,
        window_days=len(days(*WINDOW)),
    )
    [model] = pg_platform.cli("models", "churn")
    return model


def test_training_registers_a_champion(pg_platform, champion):
    platform, model = pg_platform, champion
    assert model["status"] == "champion"
    assert model["aliases"] == "champion"
    assert model["ds"] == WINDOW[1]
    assert model["family"] == "logistic_regression"
    assert model["roc_auc"] >= 0.75  # the gate's floor: with no champion, the floor alone decides
    [decision] = platform.cli("gate", "churn")
    assert decision["passed"] is True
    assert decision["champion_version"] is None
    assert decision["candidate_version"] == model["version"]


def test_scoring_backfill_and_a_manual_run_of_one_day_leave_one_prediction_set_per_day(
    pg_platform, champion, expected_rows
):
    """Ingest and score 5 days by backfill, with a manual score run of the middle day racing the
    backfill's; then reprocess the scoring backfill: same predictions, no duplicates."""
    platform, first, last, raced = pg_platform, "2025-03-22", "2025-03-26", "2025-03-24"
    assert succeeded(platform.backfill("churn_ingest", first, last, reprocess="completed"), first, last)
    manual = platform.trigger("churn_score", {"ds": raced})
    scored = platform.backfill("churn_score", first, last)
    assert platform.wait("churn_score", [manual]) == {manual: "success"}
    assert succeeded(scored, first, last)

    def predictions() -> dict[str, dict]:
        found = {}
        for ds in days(first, last):
            [day] = platform.cli("predictions", "churn", "--ds", ds)
            found[ds] = day
        return found

    before = predictions()
    for ds, day in before.items():
        assert day["rows"] == day["rows_in"] == expected_rows[ds]  # one row per customer, once
        assert (day["model_version"], day["model_versions"]) == (champion["version"], 1)
        # A demo day is one shard: the lake's day is its staged file, put in place by the publish.
        assert platform.partitions("predictions")[ds] == ["shard-0000-of-0001.parquet"]
        lake_day = (
            platform.home / "lake" / "predictions" / "churn" / f"ds={ds}" / "shard-0000-of-0001.parquet"
        )
        assert pq.read_metadata(lake_day).num_rows == expected_rows[ds]
    rerun = platform.backfill("churn_score", first, last, reprocess="completed")
    assert succeeded(rerun, first, last)
    assert predictions() == before


@pytest.fixture(scope="module")
def champion_day(pg_platform, champion) -> dict[str, dict]:
    """A REST backfill of churn_score over the champion's day (WINDOW's last), naming the champion's
    version in its conf, finished; its runs by day."""
    conf = {"model_version": champion["version"]}
    return pg_platform.backfill("churn_score", WINDOW[1], WINDOW[1], reprocess="completed", conf=conf)


def test_a_backfill_conf_reaches_every_run_and_is_used(pg_platform, champion, champion_day):
    """The backfill's params (here the model to score with) are in each of its runs' conf."""
    platform, day = pg_platform, WINDOW[1]
    assert succeeded(champion_day, day, day)
    assert champion_day[day]["conf"] == {"model_version": champion["version"]}
    [scored] = platform.cli("predictions", "churn", "--ds", day)
    assert scored["model_version"] == champion["version"]


def test_lineage_events_connect_a_days_sources_partition_model_and_predictions(
    pg_platform, champion, champion_day
):
    """The OpenLineage events of one scored day, as a lineage server reads them: its predictions came
    from its partition (which its ingest wrote from the SQL table and the day's files) and the
    champion's model file, made from the window's partitions."""
    platform, day = pg_platform, WINDOW[1]
    lake = LocalStore(platform.home / "lake")

    def partition(zone: str, ds: str) -> tuple[str, str]:
        return dataset_of(lake.uri(partition_key(zone, "churn", dt.date.fromisoformat(ds))))

    found = day_lineage(completed_runs(platform.home / LINEAGE_FILE), "churn", partition(RAW_ZONE, day))
    assert found.model == dataset_of(lake.uri(model_key("churn", champion["sha256"])))
    assert found.trained_on == {partition(RAW_ZONE, ds) for ds in days(*WINDOW)}
    lake_day = dataset_of(lake.uri(day_prefix(PREDICTIONS_ZONE, "churn", dt.date.fromisoformat(day))))
    [table] = found.predictions - {lake_day}
    assert table[0].startswith("postgres://") and table[1].endswith(".public.predictions"), table
    *files, snapshots = sorted(name for _, name in found.sources)
    assert snapshots == f"{platform.home}/source.db/customer_snapshots"
    assert files and all(f.startswith(f"{platform.home}/bucket/billing/ds={day}/") for f in files), files
