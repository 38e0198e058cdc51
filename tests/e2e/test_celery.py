"""The platform on the CeleryExecutor: `make up-celery`'s stack (include/scaleout), two workers on loopback.

The stack is started by the entry point's own functions, on fresh PostgreSQL databases and a Redis
database of its own (emptied first), and every process group is stopped in the fixture's teardown,
whatever the tests did. `make test-celery` runs this file; `.ci/run` runs it after the e2e suite.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from include.demo.airflow_api import AirflowApi, wait_for_dag
from include.scaleout.stack import CeleryAirflow, CeleryLayout, node_name, prepare, stack_env
from tests.conftest import PG_ADMIN_URL, free_port, postgres_database, unavailable
from tests.e2e.conftest import USER, Platform, days

pytestmark = [pytest.mark.e2e, pytest.mark.celery]

# Its own Redis database: `make up-celery` uses 3; this one is emptied before the stack starts.
BROKER_URL = "redis://127.0.0.1:6379/5"
# Training's smallest window: holdout (14) + 7 days.
WINDOW = ("2025-03-01", "2025-03-21")


def empty_broker(url: str) -> None:
    """Drop whatever an earlier, interrupted run left in the test's Redis database."""
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=5).flushdb()
    except redis.RedisError as exc:
        unavailable(f"Redis is not reachable at {url}: {exc}")


@pytest.fixture(scope="module")
def celery_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """`make up-celery`'s stack with two workers (one task slot each), churn_ingest and churn_train
    unpaused; a failed task is retried once, 5 s later."""
    empty_broker(BROKER_URL)
    with (
        postgres_database("celery_airflow") as metadata,
        postgres_database("celery_platform") as platform_db,
    ):
        home = tmp_path_factory.mktemp("celery")
        layout = CeleryLayout(
            home=home,
            port=free_port(),
            trigger_log_port=free_port(),
            postgres_url=PG_ADMIN_URL,
            metadata_db=metadata.database,
            platform_db=platform_db.database,
            broker_url=BROKER_URL,
            password="celery-e2e",
        )
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("PLATFORM_")}
        env = stack_env(
            layout,
            {**inherited, "PLATFORM_TASK_RETRIES": "1", "PLATFORM_TASK_RETRY_DELAY_SECONDS": "5"},
        )
        prepare(layout, env)
        airflow = CeleryAirflow(layout, env)
        try:
            airflow.start(timeout=300)
            api = AirflowApi(airflow.url, USER, layout.password)
            for dag_id in ("churn_ingest", "churn_train"):
                wait_for_dag(api, dag_id)
                api.patch(f"/dags/{dag_id}", {"is_paused": False})
            yield Platform(home, airflow.env, airflow, api)
        finally:
            airflow.stop()


@pytest.fixture(scope="module")
def window(celery_platform: Platform) -> dict[str, dict]:
    """churn_ingest backfilled over WINDOW on the workers; its runs by day."""
    runs = celery_platform.backfill("churn_ingest", *WINDOW)
    assert {ds: r["state"] for ds, r in runs.items()} == dict.fromkeys(days(*WINDOW), "success")
    return runs


def task_instances(platform: Platform, dag_id: str, run_id: str) -> list[dict]:
    """Every task instance of a run, mapped ones one per map index."""
    return platform.api.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=1000")["task_instances"]


def test_a_training_runs_its_mapped_trials_on_both_workers(celery_platform, window):
    platform = celery_platform
    workers = {node_name(w) for w in platform.airflow.layout.worker_components}
    [run_id] = platform.run_dag(
        "churn_train",
        [WINDOW[1]],
        estimators=["logistic_regression", "dummy"],
        n_trials=3,
        window_days=len(days(*WINDOW)),
    ).values()

    instances = task_instances(platform, "churn_train", run_id)
    trials = [ti for ti in instances if ti["task_id"] == "trial"]
    assert len(trials) == 4  # three logistic regressions and the dummy baseline
    assert {ti["state"] for ti in trials} == {"success"}
    assert {ti["queue"] for ti in trials} == {"train"}
    assert {ti["hostname"] for ti in trials} == workers, "every worker ran some of the trials"
    others = [ti for ti in instances if ti["task_id"] != "trial"]
    assert {ti["queue"] for ti in others} == {"default"}
    [model] = platform.cli("models", "churn")
    assert (model["ds"], model["status"]) == (WINDOW[1], "champion")
    ingest_hosts = {
        ti["hostname"]
        for run in window.values()
        for ti in task_instances(platform, "churn_ingest", run["dag_run_id"])
    }
    assert ingest_hosts == workers, json.dumps(sorted(ingest_hosts))
