"""Alerts from real runs: a failing `churn_ingest` through `dag.test()`, and the gate on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace

import pytest

from include.registry.registry import OLDER_THAN_CHAMPION, Registry
from tests.conftest import new_version

pytestmark = pytest.mark.integration

DAY = dt.date(2025, 3, 31)


@pytest.fixture
def platform(pg_engine, pg_url, tmp_path, monkeypatch):
    """Platform tables and the SQL source in the session's (emptied) PostgreSQL, lake and files in folders."""
    from include.io.connections import engine_for

    db = json.dumps(
        {
            "conn_type": "postgres",
            "host": pg_url.host,
            "port": pg_url.port,
            "login": pg_url.username,
            "schema": pg_url.database,
        }
    )
    monkeypatch.setenv("AIRFLOW_CONN_PLATFORM_DB", db)
    monkeypatch.setenv("AIRFLOW_CONN_CHURN_SOURCE_DB", db)
    for conn_id, folder in (("PLATFORM_LAKE", "lake"), ("CHURN_SOURCE_FILES", "bucket")):
        extra = {"path": str(tmp_path / folder)}
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id}", json.dumps({"conn_type": "fs", "extra": extra}))
    engine_for.cache_clear()
    yield Registry(pg_engine)
    engine_for.cache_clear()


def test_a_failed_ingest_run_alerts_with_the_day_and_the_error(airflow_db, platform, receiver):
    from airflow.dag_processing.dagbag import DagBag

    from tests.conftest import REPO

    dag = DagBag(dag_folder=str(REPO / "dags" / "ingest.py")).dags["churn_ingest"]
    for task in dag.tasks:
        task.retries = 0
    run = dag.test(logical_date=dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC))

    assert run.state == "failed"
    [request] = receiver.received
    message = request["json"]
    assert (message["event"], message["dag_id"], message["task_id"]) == ("failed", "churn_ingest", "ingest")
    assert message["ds"] == "2025-03-31"
    assert message["run_id"] == run.run_id
    assert message["reason"].startswith("IngestError: ") and "customer_snapshots" in message["reason"]
    assert message["log_url"].endswith("/tasks/ingest?try_number=1")


def registered(registry: Registry, run_id: str, ds: dt.date, roc_auc: float) -> int:
    return registry.register(new_version(run_id, ds, roc_auc)).version


def gate_context(ds: dt.date) -> dict:
    ti = SimpleNamespace(dag_id="churn_train", task_id="gate", run_id=f"manual__{ds}", log_url="http://log")
    return {"ti": ti, "params": {"ds": ds.isoformat()}, "logical_date": None, "dag_run": None}


def test_a_candidate_below_the_floor_is_rejected_with_an_alert(platform, receiver):
    from include.training.task import gate

    version = registered(platform, "weak", DAY, roc_auc=0.6)
    assert gate("churn", {}, {"version": version}, gate_context(DAY)) is False

    message = receiver.received[0]["json"]
    assert (message["event"], message["dag_id"], message["ds"]) == ("rejected", "churn_train", "2025-03-31")
    assert (message["candidate_version"], message["champion_version"]) == (version, None)
    assert message["reason"] == "roc_auc 0.6000 < floor 0.7500"


def test_a_candidate_older_than_the_champion_is_rejected_with_an_alert(platform, receiver):
    from include.training.task import gate

    champion = registered(platform, "champion", DAY, roc_auc=0.84)
    assert platform.promote("churn", champion, expected=None).promoted
    backfill = registered(platform, "backfill", DAY - dt.timedelta(days=7), roc_auc=0.9)
    assert gate("churn", {}, {"version": backfill}, gate_context(DAY - dt.timedelta(days=7))) is False

    message = receiver.received[0]["json"]
    assert (message["candidate_version"], message["champion_version"]) == (backfill, champion)
    assert OLDER_THAN_CHAMPION in message["reason"]


def test_a_passing_candidate_sends_no_alert(platform, receiver):
    from include.training.task import gate

    version = registered(platform, "strong", DAY, roc_auc=0.84)
    assert gate("churn", {}, {"version": version}, gate_context(DAY)) is True
    assert receiver.received == []
