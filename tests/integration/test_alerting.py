"""Alerts from real runs: a failing `churn_ingest` through `dag.test()`, and the gate on PostgreSQL."""

from __future__ import annotations

import dataclasses
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


@pytest.fixture
def holdout(tmp_path) -> dict:
    """A plan naming a holdout in the lake folder: a third of the real rows."""
    import pandas as pd

    from include.io.lake import write_frame
    from include.io.stores import LocalStore
    from tests.unit.conftest import DATA

    rows = pd.read_csv(DATA)
    write_frame(LocalStore(tmp_path / "lake"), "training/churn/holdout.parquet", rows.iloc[::3])
    return {"holdout_key": "training/churn/holdout.parquet", "train": rows.drop(rows.index[::3])}


def registered(registry: Registry, run_id: str, ds: dt.date, family: str, train, tmp_path) -> int:
    """A version with a real model file of `family` fitted on `train` (the gate scores the file)."""
    from include.io.stores import LocalStore
    from include.registry.model_files import dump_model, store_model
    from include.training.estimators import Trial
    from include.training.tuning import fit_final
    from include.usecases.spec import get_spec

    trial = Trial(f"{family}-0", family, {"C": 1.0} if family == "logistic_regression" else {})
    model = fit_final(get_spec("churn"), trial, train, 0.4)
    uri, sha = store_model(LocalStore(tmp_path / "lake"), "churn", dump_model(model, {"run": run_id}))
    entry = new_version(run_id, ds)
    return registry.register(
        dataclasses.replace(entry, family=family, params=dict(trial.params), artifact_uri=uri, sha256=sha)
    ).version


def gate(version: int, ds: dt.date, holdout: dict) -> bool:
    """The training DAG's gate task for `version` as of `ds`, alerting as the DAG's task does."""
    from include.alerting import rejection_alert
    from include.runs import RunFacts, Stores
    from include.training.task import Candidate, TrainingPlan, WindowCoverage
    from include.training.task import gate as judge_and_record

    run, stores = RunFacts.of("churn", ds, f"manual__{ds}"), Stores.from_settings()
    plan = TrainingPlan(
        ds=ds,
        train_key="training/churn/train.parquet",
        holdout_key=holdout["holdout_key"],
        window=(ds, ds),
        holdout=(ds, ds),
        rows={},
        fingerprint="",
        spec_sha256=run.spec_sha256,
        coverage=WindowCoverage(first=ds, last=ds, read=[ds], withdrawn=[], missing=[]),
    )
    candidate = Candidate.of(stores.registry.get("churn", version), unchanged=False)
    ti = SimpleNamespace(dag_id="churn_train", task_id="gate", run_id=run.run_id, log_url="http://log")
    context = {"ti": ti, "params": {"ds": ds.isoformat()}, "logical_date": None, "dag_run": None}
    return judge_and_record(run, plan, candidate, stores, rejection_alert(context, run))


def test_a_candidate_below_the_floor_is_rejected_with_an_alert(platform, receiver, holdout, tmp_path):
    version = registered(platform, "weak", DAY, "dummy", holdout["train"], tmp_path)
    assert gate(version, DAY, holdout) is False

    message = receiver.received[0]["json"]
    assert (message["event"], message["dag_id"], message["ds"]) == ("rejected", "churn_train", "2025-03-31")
    assert (message["candidate_version"], message["champion_version"]) == (version, None)
    assert message["reason"] == "roc_auc 0.5000, 90% bound 0.5000 < floor 0.7500"


def test_a_candidate_older_than_the_champion_is_rejected_with_an_alert(platform, receiver, holdout, tmp_path):
    champion = registered(platform, "champion", DAY, "logistic_regression", holdout["train"], tmp_path)
    assert platform.promote("churn", champion, expected=None).promoted
    older = DAY - dt.timedelta(days=7)
    backfill = registered(platform, "backfill", older, "logistic_regression", holdout["train"], tmp_path)
    assert gate(backfill, older, holdout) is False

    message = receiver.received[0]["json"]
    assert (message["candidate_version"], message["champion_version"]) == (backfill, champion)
    assert OLDER_THAN_CHAMPION in message["reason"]


def test_a_passing_candidate_sends_no_alert_and_its_bounds_are_stored(platform, receiver, holdout, tmp_path):
    version = registered(platform, "strong", DAY, "logistic_regression", holdout["train"], tmp_path)
    assert gate(version, DAY, holdout) is True
    assert receiver.received == []
    decision = platform.decision("churn", version)
    floor = decision.evidence["levels"]["roc_auc"]
    assert 0.75 < floor["lower"] < floor["estimate"] < floor["upper"]
    assert decision.difference is None  # no champion: nothing to differ from


def test_a_twin_of_the_champion_is_rejected_on_its_interval_and_a_rerun_decides_the_same(
    platform, receiver, holdout, tmp_path
):
    champion = registered(platform, "champion", DAY, "logistic_regression", holdout["train"], tmp_path)
    assert platform.promote("churn", champion, expected=None).promoted
    twin = registered(platform, "twin", DAY, "logistic_regression", holdout["train"], tmp_path)
    assert gate(twin, DAY, holdout) is False
    first = platform.decision("churn", twin)
    assert (first.difference, first.difference_lower, first.difference_upper) == (0.0, 0.0, 0.0)
    assert first.confidence == 0.9
    assert (
        "roc_auc gain +0.0000 [+0.0000, +0.0000]: 90% bound +0.0000 < min_improvement 0.0050" in first.reasons
    )
    assert gate(twin, DAY, holdout) is False
    assert platform.decision("churn", twin).reasons == first.reasons
