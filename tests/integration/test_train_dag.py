"""`churn_train` through `dag.test()` on a spec with derived features (a ratio, a log1p, a sentinel
declared missing) and a gate slice: the run registers a version whose model computes them, and the
gate's decision holds its bounds."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
import sqlalchemy as sa

from include.ingest.pipeline import ingest_partition, read_sources
from include.io.stores import LocalStore
from include.partition import Partition
from include.platform.schema import upgrade
from include.registry.model_files import load_version_model
from include.registry.registry import Registry
from include.usecases.spec import get_spec, load_spec
from tools.demo.seed import seed
from tools.testkit import write_changed_spec

pytestmark = pytest.mark.integration

AS_OF = dt.date(2025, 3, 31)
DAYS = [AS_OF - dt.timedelta(days=n) for n in range(13, -1, -1)]
DERIVED = {
    "charges_per_month": "TotalCharges / tenure",
    "log_total": "log1p(TotalCharges)",
    "known_tenure": "missing(tenure, 0)",  # a tenure of 0 (a first month) declared missing
}


@pytest.fixture
def small_spec(tmp_path, monkeypatch):
    """churn.yaml with derived features, a quick search and a 14-day window, in its own spec folder."""
    training = {
        "window_days": 14,
        "holdout_days": 5,
        "cv_folds": 2,
        "n_trials": 1,
        "estimators": ["logistic_regression"],
    }
    folder = write_changed_spec(tmp_path / "specs", {"features": {"derived": DERIVED}, "training": training})
    monkeypatch.setenv("PLATFORM_SPEC_DIR", str(folder))
    spec = load_spec(folder / "churn.yaml")
    assert spec.gate.slices == ("Contract",)
    return spec


@pytest.fixture
def world(small_spec, tmp_path, monkeypatch):
    """Fourteen ingested days in a lake folder, a SQLite platform, and the connections tasks resolve."""
    spec = get_spec("churn")
    sources = sa.create_engine(f"sqlite:///{tmp_path / 'source.db'}")
    bucket, lake = LocalStore(tmp_path / "bucket"), LocalStore(tmp_path / "lake")
    platform = sa.create_engine(f"sqlite:///{tmp_path / 'platform.db'}")
    seed(sources, bucket, spec)
    upgrade(platform)
    for day in DAYS:
        partition = Partition(day)
        raw = read_sources(spec, partition, lambda _: sources, lambda _: bucket)
        ingest_partition(spec, partition, raw=raw, lake=lake, platform=platform, run_id=f"ingest-{day}")
    suffix = uuid.uuid4().hex[:8]
    monkeypatch.setenv("PLATFORM_DB_CONN_ID", f"platform_{suffix}")
    monkeypatch.setenv("PLATFORM_LAKE_CONN_ID", f"lake_{suffix}")
    platform_conn = {"conn_type": "sqlite", "host": str(tmp_path / "platform.db")}
    monkeypatch.setenv(f"AIRFLOW_CONN_PLATFORM_{suffix.upper()}", json.dumps(platform_conn))
    lake_conn = {"conn_type": "fs", "extra": {"path": str(lake.root)}}
    monkeypatch.setenv(f"AIRFLOW_CONN_LAKE_{suffix.upper()}", json.dumps(lake_conn))
    yield platform, lake
    platform.dispose()


def test_a_spec_with_derived_features_and_a_slice_trains_through_dag_test(airflow_db, world, small_spec):
    from airflow.dag_processing.dagbag import DagBag

    from tests.conftest import REPO

    platform, lake = world
    dag = DagBag(dag_folder=str(REPO / "dags" / "train.py")).dags["churn_train"]
    for task in dag.tasks:
        task.retries = 0
    run = dag.test(logical_date=dt.datetime.combine(AS_OF, dt.time(), tzinfo=dt.UTC))
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}

    assert run.state == "success", states
    registry = Registry(platform)
    [version] = registry.versions("churn")
    model = load_version_model(lake, version)  # sha256 checked, DerivedFeatures trusted by name
    derived = model.model.pipeline.named_steps["preprocess"].named_transformers_["derived"]
    assert derived.named_steps["derive"].expressions == DERIVED
    decision = registry.decision("churn", version.version)
    floor = decision.evidence["levels"]["roc_auc"]
    assert floor["lower"] < floor["estimate"] < floor["upper"]
    assert decision.passed == (floor["lower"] >= small_spec.gate.floor)
    assert decision.evidence["slices"] == []  # no champion: nothing to compare per slice
