"""The platform on the CeleryExecutor: `make up-celery`'s stack (tools/scaleout), two workers on loopback.

The stack is started by the entry point's own functions, on fresh PostgreSQL databases and a Redis
database of its own (emptied first), and every process group is stopped in the fixture's teardown,
whatever the tests did. `make test-celery` runs this file; `.ci/run` runs it after the e2e suite.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Iterator

import pandas as pd
import pytest

from include.io.stores import LocalStore
from include.usecases.spec import get_spec
from tests.conftest import PG_ADMIN_URL, free_port, postgres_database, unavailable
from tools.demo.airflow_api import AirflowApi, wait_for_dag
from tools.reliability.airflow_world import USER, Platform, days
from tools.scaleout.bench import DAY as BENCH_DAY
from tools.scaleout.bench import day_rows, put_day, write_day
from tools.scaleout.stack import CeleryAirflow, CeleryLayout, node_name, prepare, stack_env

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
    """`make up-celery`'s stack with two workers (one task slot each), the churn DAGs unpaused; a failed
    task is retried once, 5 s later, and a task whose worker died is failed 30 s after its last
    heartbeat (300 by default)."""
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
        env["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT"] = "30"
        prepare(layout, env)
        airflow = CeleryAirflow(layout, env)
        try:
            airflow.start(timeout=300)
            api = AirflowApi(airflow.url, USER, layout.password)
            for dag_id in ("churn_ingest", "churn_train", "churn_score"):
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


@pytest.fixture(scope="module")
def trained(celery_platform: Platform, window: dict[str, dict]) -> str:
    """A training run as of WINDOW's last day, its trials mapped (3 logistic regressions and the dummy
    baseline); its run id. It makes the champion that scores DAY."""
    [run_id] = celery_platform.run_dag(
        "churn_train",
        [WINDOW[1]],
        estimators=["logistic_regression", "dummy"],
        n_trials=3,
        window_days=len(days(*WINDOW)),
    ).values()
    return run_id


def task_instances(platform: Platform, dag_id: str, run_id: str) -> list[dict]:
    """Every task instance of a run, mapped ones one per map index."""
    return platform.api.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=1000")["task_instances"]


def test_a_training_runs_its_mapped_trials_on_the_train_queue(celery_platform, window, trained):
    platform = celery_platform
    instances = task_instances(platform, "churn_train", trained)
    trials = [ti for ti in instances if ti["task_id"] == "trial"]
    assert len(trials) == 4  # three logistic regressions and the dummy baseline
    assert {ti["state"] for ti in trials} == {"success"}
    assert {ti["queue"] for ti in trials} == {"train"}
    # Which worker takes a trial is Celery's choice: on warm workers a trial takes about a second, and
    # one worker may take all four (seen here); the window's 21 ingest runs show both workers at work.
    assert {ti["hostname"] for ti in trials} <= workers(platform)
    others = [ti for ti in instances if ti["task_id"] != "trial"]
    assert {ti["queue"] for ti in others} == {"default"}
    [model] = platform.cli("models", "churn")
    assert (model["ds"], model["status"]) == (WINDOW[1], "champion")
    ingest_hosts = {
        ti["hostname"]
        for run in window.values()
        for ti in task_instances(platform, "churn_ingest", run["dag_run_id"])
    }
    assert ingest_hosts == workers(platform), json.dumps(sorted(ingest_hosts))


# Scoring: wait_for_partition -> resolve, plan -> mapped score_shard -> publish; the plan gives each of
# the two workers on the score queue one shard of the 1 M-row day (more would not pay their start-up).
DAY = BENCH_DAY.isoformat()  # after the champion's training window
ROWS = 1_000_000


def workers(platform: Platform) -> set[str]:
    """The stack's Celery node names, as task instances record them."""
    return {node_name(w) for w in platform.airflow.layout.worker_components}


@pytest.fixture(scope="module")
def big_day(celery_platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> int:
    """A day of ROWS rows generated as `make bench` does, in the lake as ingest writes it (row groups of
    `ingest.row_group_rows`) with its ingest run record; the number of row groups."""
    import sqlalchemy as sa

    spec = get_spec("churn")
    engine = sa.create_engine(platform_url(celery_platform))
    lake = LocalStore(celery_platform.home / "lake")
    generated = tmp_path_factory.mktemp("big-day") / "day.parquet"
    write_day(generated, spec, day_rows(spec, ROWS))
    groups = put_day(lake, engine, spec, generated)
    engine.dispose()
    return groups


def platform_url(platform: Platform) -> str:
    """The platform database's URL, from the stack's `platform_db` connection."""
    conn = json.loads(platform.env["AIRFLOW_CONN_PLATFORM_DB"])
    return f"postgresql+psycopg2://{conn['login']}@{conn['host']}:{conn['port']}/{conn['schema']}"


def day_outcome(platform: Platform) -> tuple[pd.DataFrame, dict, list[dict]]:
    """DAY's predictions (sorted by entity, without their time stamp), its run record and drift rows."""
    import sqlalchemy as sa

    from include.platform.tables import drift_measures, predictions, score_runs

    engine = sa.create_engine(platform_url(platform))
    day = dt.date.fromisoformat(DAY)
    with engine.connect() as conn:
        frame = pd.read_sql(
            sa.select(
                predictions.c.entity_id,
                predictions.c.model_version,
                predictions.c.score,
                predictions.c.predicted_label,
            )
            .where((predictions.c.use_case == "churn") & (predictions.c.ds == day))
            .order_by(predictions.c.entity_id),
            conn,
        )
        record = conn.execute(sa.select(score_runs).where(score_runs.c.ds == day)).mappings().one()
        drift = [
            dict(r)
            for r in conn.execute(
                sa.select(drift_measures).where(drift_measures.c.ds == day).order_by(drift_measures.c.feature)
            ).mappings()
        ]
    engine.dispose()
    return frame, dict(record), drift


# What must agree between two scorings of the day (not the run id, the time or the lake URI's run).
FIGURES = (
    "model_version",
    "rows_in",
    "rows_scored",
    "rows_rejected",
    "rejected_reasons",
    "score_mean",
    "positive_rate",
    "score_histogram",
    "drift_level",
)


@pytest.fixture(scope="module")
def one_shard(celery_platform: Platform, trained: str, big_day: int, tmp_path_factory) -> tuple:
    """DAY scored as ONE shard by the scoring tasks' own code in this process (a spec whose
    `scoring.shard_rows` exceeds the day), before the Celery runs replace it; its outcome."""
    from include.runs import RunFacts, Stores
    from include.scoring.task import run_scoring
    from tools.testkit import write_changed_spec

    folder = tmp_path_factory.mktemp("one-shard-spec")
    specs = write_changed_spec(folder, {"scoring": {"shard_rows": 2 * ROWS}})
    settings = {k: v for k, v in celery_platform.env.items() if k.startswith(("AIRFLOW_CONN_", "PLATFORM_"))}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {**settings, "PLATFORM_SPEC_DIR": str(specs)}.items():
            patch.setenv(name, value)
        run_scoring(RunFacts.of("churn", DAY, "one-shard-reference"), Stores.from_settings())
    return day_outcome(celery_platform)


def shard_instances(platform: Platform, run_id: str) -> list[dict]:
    return [ti for ti in task_instances(platform, "churn_score", run_id) if ti["task_id"] == "score_shard"]


def test_a_big_day_is_scored_in_shards_on_both_workers_as_one_shard_scores_it(celery_platform, one_shard):
    platform = celery_platform
    reference, reference_record, reference_drift = one_shard
    assert reference_record["rows_in"] == ROWS

    [run_id] = platform.run_dag("churn_score", [DAY]).values()

    shards = shard_instances(platform, run_id)
    assert len(shards) == 2
    assert {ti["state"] for ti in shards} == {"success"}
    assert {ti["queue"] for ti in shards} == {"score"}
    assert {ti["hostname"] for ti in shards} == workers(platform), "both workers scored shards"
    frame, record, drift = day_outcome(platform)
    assert record["run_id"] == run_id
    pd.testing.assert_frame_equal(frame, reference)  # row for row, to the last bit of each score
    assert {f: record[f] for f in FIGURES} == {f: reference_record[f] for f in FIGURES}
    strip = ("recorded_at",)
    assert [{k: v for k, v in d.items() if k not in strip} for d in drift] == [
        {k: v for k, v in d.items() if k not in strip} for d in reference_drift
    ]


def test_a_worker_killed_while_its_shard_runs_leaves_one_prediction_per_entity(celery_platform, one_shard):
    platform = celery_platform
    reference = one_shard[0]
    run_id = platform.trigger("churn_score", {"ds": DAY})
    victim = wait_for_running_shard(platform, run_id)
    worker = next(w for w in platform.airflow.layout.worker_components if node_name(w) == victim["hostname"])
    platform.airflow.crash(worker)  # SIGKILL to the worker's process group: its task dies with it
    platform.airflow.restart(worker)

    assert platform.wait("churn_score", [run_id], timeout=600) == {run_id: "success"}
    index = victim["map_index"]
    tries = platform.api.get(f"/dags/churn_score/dagRuns/{run_id}/taskInstances/score_shard/{index}/tries")
    attempts = {t["try_number"]: (t["state"], t["hostname"]) for t in tries["task_instances"]}
    assert attempts[1][1] == victim["hostname"] and attempts[1][0] != "success"  # the killed try
    assert max(attempts) >= 2 and attempts[max(attempts)][0] == "success"
    frame, record, _ = day_outcome(platform)
    assert len(frame) == frame["entity_id"].nunique() == ROWS  # exactly one prediction per entity
    assert record["run_id"] == run_id
    assert record["rows_in"] == record["rows_scored"] + record["rows_rejected"] == len(frame)
    pd.testing.assert_frame_equal(frame, reference)
    staging = platform.home / "lake" / "staging"
    assert not [p for p in staging.rglob("*") if p.is_file()], "the publish removes every staged shard"
    assert not leftover_shard_tables(platform), "the killed try's table rolled back, the others attached"


def leftover_shard_tables(platform: Platform) -> list[str]:
    """Shard tables that are no partition of a day (a try's table the publish did not attach)."""
    import sqlalchemy as sa

    engine = sa.create_engine(platform_url(platform))
    query = "SELECT relname FROM pg_class WHERE NOT relispartition AND starts_with(relname, 'predictions__')"
    with engine.connect() as conn:
        found = list(conn.execute(sa.text(f"{query} AND relkind = 'r'")).scalars())
    engine.dispose()
    return found


def wait_for_running_shard(platform: Platform, run_id: str, timeout: float = 300) -> dict:
    """A score_shard instance that has been running on a worker for 1 s (into its rows: a shard's
    start-up is ~0.3 s on a warm worker, its 500 k rows ~3 s), as the API reports it then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = dt.datetime.now(dt.UTC)
        shards = shard_instances(platform, run_id)
        for ti in (ti for ti in shards if ti["state"] == "running" and ti["hostname"]):
            if now - dt.datetime.fromisoformat(ti["start_date"]) >= dt.timedelta(seconds=1):
                return ti
        time.sleep(0.2)
    raise TimeoutError(f"no score_shard of {run_id} was running after {timeout:.0f}s")
