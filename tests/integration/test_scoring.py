"""Scoring against real databases: SQLite (the embedded default) and PostgreSQL (the bulk COPY path).

The world: thirteen ingested days of the real Telco rows in a lake folder, and two champions trained
on the first ten, v1 as of 2025-02-01 and v2 as of 2025-03-30, so that point-in-time scoring shows.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import pandas as pd
import pytest
import sqlalchemy as sa

from include.ingest.pipeline import ingest_partition, read_sources
from include.io.lake import read_days, read_frame, write_frame
from include.io.stores import LocalStore
from include.partition import Partition
from include.platform.schema import upgrade
from include.platform.tables import drift_measures, ingest_runs, predictions, retrain_requests, score_runs
from include.registry.registry import Registry
from include.runs import RunFacts, Stores
from include.scoring.score import ScoreError, ShardCosts
from include.scoring.task import PublishedDay, last_costs
from include.usecases.spec import get_spec
from tests.conftest import dags_test_output, register_model, run_dag, task_states, use_platform
from tools.demo.seed import seed

pytestmark = pytest.mark.integration

SPEC = get_spec("churn")
DAYS = [dt.date(2025, 3, 29), dt.date(2025, 3, 30), dt.date(2025, 3, 31)]
TRAINING_DAYS = [dt.date(2025, 3, 1) + dt.timedelta(days=n) for n in range(10)]
OLD, NEW = dt.date(2025, 2, 1), dt.date(2025, 3, 30)


@pytest.fixture(params=["sqlite", "postgres"])
def platform(request, tmp_path):
    """The platform database: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'platform.db'}")
        yield engine
        engine.dispose()
    else:
        yield request.getfixturevalue("pg_engine")


@pytest.fixture
def world(platform, tmp_path, monkeypatch):
    """Ingested days, two champions, and the connections a task run resolves (unique ids per test)."""
    sources = sa.create_engine(f"sqlite:///{tmp_path / 'source.db'}")
    bucket, lake = LocalStore(tmp_path / "bucket"), LocalStore(tmp_path / "lake")
    seed(sources, bucket, SPEC)
    upgrade(platform)
    for day in TRAINING_DAYS + DAYS:
        partition = Partition(day)
        raw = read_sources(SPEC, partition, lambda _: sources, lambda _: bucket)
        ingest_partition(SPEC, partition, raw=raw, lake=lake, platform=platform, run_id=f"ingest-{day}")
    training, _ = read_days(lake, "raw", "churn", TRAINING_DAYS[0], TRAINING_DAYS[-1])
    registry = Registry(platform)
    for ds, family, params in ((OLD, "dummy", {}), (NEW, "logistic_regression", {"C": 1.0})):
        version = register_model(registry, lake, SPEC, training, ds, family, params, f"train-{ds}")
        champion = registry.champion("churn")
        assert registry.promote("churn", version, champion.version if champion else None).promoted

    use_platform(monkeypatch, platform, lake.root)
    return platform, lake, registry


def ordinary_day(lake, platform, day: dt.date) -> None:
    """Replace `day`'s partition (in the demo data's drift week) with a pre-drift day's rows, and its
    run record's row count with it (the scoring sensor waits while the two disagree)."""
    rows = read_frame(lake, f"raw/churn/ds={TRAINING_DAYS[-1]}/part-0.parquet")
    write_frame(lake, f"raw/churn/ds={day}/part-0.parquet", rows)
    with platform.begin() as conn:
        conn.execute(sa.update(ingest_runs).where(ingest_runs.c.ds == day).values(rows_written=len(rows)))


def big_day(lake) -> pd.DataFrame:
    """Every ingested customer as one day (once, though `ordinary_day` may have copied a day)."""
    rows, _ = read_days(lake, "raw", "churn", TRAINING_DAYS[0], DAYS[-1])
    return rows.drop_duplicates(SPEC.entity_id, ignore_index=True)


def run_of(day: dt.date, run_id: str = "score") -> RunFacts:
    return RunFacts.of("churn", day, run_id)


def score(
    day: dt.date, model_version: int | None = None, run: str = "score", shards: int | None = None
) -> PublishedDay:
    """One run of the score DAG's tasks in this process, as the DAG calls them (in `shards` shards)."""
    from include.scoring.task import run_scoring

    return run_scoring(
        RunFacts.of("churn", day, f"{run}-{day}", model_version=model_version), Stores.from_settings(), shards
    )


def lake_predictions(lake, day: dt.date) -> pd.DataFrame:
    """The day's predictions in the lake (its files, one per shard), by entity."""
    frames = [read_frame(lake, key) for key in lake_day(lake, "predictions", day)]
    return pd.concat(frames, ignore_index=True).sort_values("entity_id", ignore_index=True)


def day_predictions(engine: sa.Engine, day: dt.date) -> pd.DataFrame:
    query = (
        sa.select(predictions)
        .where((predictions.c.use_case == "churn") & (predictions.c.ds == day))
        .order_by(predictions.c.entity_id)
    )
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(query).mappings().all())


def test_a_day_is_scored_reconciled_and_the_same_in_table_and_lake(world):
    platform, lake, _ = world
    summary = score(DAYS[2])

    rows = read_frame(lake, f"raw/churn/ds={DAYS[2]}/part-0.parquet")
    table = day_predictions(platform, DAYS[2])
    assert len(table) == len(rows) == summary.rows_in == summary.rows_scored
    assert set(table["entity_id"]) == set(rows["customerID"])
    assert table["model_version"].eq(2).all()
    assert table["score"].between(0, 1).all()
    assert summary.rows_rejected == 0
    assert sum(summary.score_histogram) == len(rows)

    in_lake = lake_predictions(lake, DAYS[2])
    assert in_lake["entity_id"].tolist() == table["entity_id"].tolist()
    assert in_lake["score"].tolist() == pytest.approx(table["score"].tolist(), abs=1e-12)
    with platform.connect() as conn:
        run = conn.execute(sa.select(score_runs)).mappings().one()
        features = conn.execute(sa.select(drift_measures.c.feature)).scalars().all()
    assert run["rows_in"] == run["rows_scored"] + run["rows_rejected"]
    assert set(features) == {*SPEC.features.numeric, *SPEC.features.categorical, *SPEC.features.boolean}


def test_rescoring_gives_the_same_rows_and_no_duplicates(world):
    platform, _, _ = world
    score(DAYS[2])
    first = day_predictions(platform, DAYS[2])
    score(DAYS[2])
    second = day_predictions(platform, DAYS[2])
    pd.testing.assert_frame_equal(
        first.drop(columns="scored_at"), second.drop(columns="scored_at"), check_exact=True
    )
    with platform.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(score_runs)).scalar() == 1


def test_each_day_uses_the_champion_of_its_time(world):
    platform, _, _ = world
    assert score(DAYS[0]).model_version == 1  # 2025-03-29: v2 (as of 03-30) was not champion yet
    assert score(DAYS[1]).model_version == 2
    assert set(day_predictions(platform, DAYS[0])["model_version"]) == {1}
    # The dummy champion predicts the prior for everyone; the logistic one does not.
    assert day_predictions(platform, DAYS[0])["score"].nunique() == 1
    assert day_predictions(platform, DAYS[1])["score"].nunique() > 50


def test_a_named_version_overrides_the_champion(world):
    assert score(DAYS[2], model_version=1).model_version == 1


def test_an_unknown_version_and_a_day_without_champion_say_what_to_do(world):
    with pytest.raises(ScoreError, match=r"model_version: churn has no version 9 \(registered: \[1, 2\]\)"):
        score(DAYS[2], model_version=9)
    with pytest.raises(ScoreError, match=r"no champion as of ds=2025-01-15.*trigger churn_train"):
        score(dt.date(2025, 1, 15))


def test_a_tampered_model_file_is_refused_before_loading(world):
    platform, lake, registry = world
    key = lake.key_of(registry.get("churn", 2).artifact_uri)
    lake.put_bytes(key, lake.read_bytes(key) + b"tampered")
    with pytest.raises(ValueError, match="checksum mismatch"):
        score(DAYS[2])
    assert day_predictions(platform, DAYS[2]).empty


def with_batch_rows(tmp_path, monkeypatch, batch_rows: int, shard_rows: int = 250_000) -> None:
    """Point the task at a copy of the spec that scores `batch_rows` rows at a time, in shards of
    `shard_rows`."""
    from tools.testkit import write_changed_spec

    changes = {"scoring": {"batch_rows": batch_rows, "shard_rows": shard_rows}}
    folder = write_changed_spec(tmp_path / f"specs-{batch_rows}-{shard_rows}", changes)
    monkeypatch.setenv("PLATFORM_SPEC_DIR", str(folder))


def test_the_chunked_path_equals_the_one_shot_path_row_for_row(world, tmp_path, monkeypatch):
    platform, lake, _ = world
    every_day, _ = read_days(lake, "raw", "churn", DAYS[0], DAYS[2])
    write_frame(lake, f"raw/churn/ds={DAYS[2]}/part-0.parquet", every_day)
    with_batch_rows(tmp_path, monkeypatch, 1_000_000)
    score(DAYS[2])
    one_shot = day_predictions(platform, DAYS[2])
    with_batch_rows(tmp_path, monkeypatch, 7)
    chunked_summary = score(DAYS[2])
    chunked = day_predictions(platform, DAYS[2])
    assert chunked_summary.rows_scored == len(one_shot) == len(every_day)
    exact = ["use_case", "ds", "entity_id", "model_version", "predicted_label"]
    pd.testing.assert_frame_equal(one_shot[exact], chunked[exact], check_exact=True)
    # BLAS sums a matrix product in an order that depends on the batch's shape: the last bit may move.
    assert chunked["score"].to_numpy() == pytest.approx(one_shot["score"].to_numpy(), rel=1e-12, abs=0)


KILL_SCRIPT = """
import os, signal, sys
import pyarrow as pa
import sqlalchemy as sa
from include.platform.day_swap import replace_partition
from include.platform.tables import predictions
from include.scoring.score import PREDICTION_SCHEMA
import datetime as dt

engine = sa.create_engine(sys.argv[1])
ds = dt.date.fromisoformat(sys.argv[2])
def batches():
    for n in range(1000):
        if n == 5:
            os.kill(os.getpid(), signal.SIGKILL)  # killed in the middle of the bulk write
        yield pa.record_batch(
            [pa.array(["churn"] * 100), pa.array([ds] * 100, pa.date32()),
             pa.array([f"{n:04d}-{i:05d}" for i in range(100)]), pa.array([99] * 100, pa.int32()),
             pa.array([0.5] * 100), pa.array([1] * 100, pa.int16()),
             pa.array([dt.datetime.now(dt.UTC)] * 100, pa.timestamp("us", tz="UTC")),
             pa.nulls(100, pa.string()), pa.nulls(100, pa.string())],
            schema=PREDICTION_SCHEMA)
replace_partition(engine, predictions, {"use_case": "churn", "ds": ds}, PREDICTION_SCHEMA, batches())
"""


def test_a_kill_in_the_middle_of_the_write_leaves_the_old_partition(world):
    platform, _, _ = world
    score(DAYS[2])
    before = day_predictions(platform, DAYS[2])
    url = platform.url.render_as_string(hide_password=False)

    killed = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, url, DAYS[2].isoformat()], capture_output=True, check=False
    )
    assert killed.returncode == -9, killed.stderr.decode()
    pd.testing.assert_frame_equal(before, day_predictions(platform, DAYS[2]))


def test_drift_that_persists_requests_a_retrain_then_the_cooldown_holds(world):
    from include.scoring.task import RetrainBlocked, request_retrain, retrain_due

    platform, lake, _ = world
    drifted = big_day(lake)
    drifted["Contract"] = "Two year"  # the whole day moves to one category
    drifted["MonthlyCharges"] = drifted["MonthlyCharges"] * 3

    for day in DAYS[1:]:
        write_frame(lake, f"raw/churn/ds={day}/part-0.parquet", drifted)
    ordinary_day(lake, platform, DAYS[0])

    stable = score(DAYS[0])
    assert stable.drift_level != "alert"
    assert not retrain_due(run_of(DAYS[0]), stable, Stores.from_settings())

    first = score(DAYS[1])
    assert first.drift_level == "alert"
    assert set(first.alerts) >= {"Contract", "MonthlyCharges"}
    assert not retrain_due(run_of(DAYS[1]), first, Stores.from_settings())  # drift.alert_days is 2

    second = score(DAYS[2])
    assert retrain_due(run_of(DAYS[2]), second, Stores.from_settings())
    extra = request_retrain(run_of(DAYS[2], "score-drift"), second, Stores.from_settings())
    assert extra["ds"] == DAYS[2].isoformat() and set(extra["features"]) >= {"Contract", "MonthlyCharges"}

    # A rerun of the same day does not ask again; the run now holds DAYS[1] too, behind a newer request.
    assert not retrain_due(run_of(DAYS[2]), second, Stores.from_settings())
    assert not retrain_due(run_of(DAYS[1]), first, Stores.from_settings())
    with pytest.raises(RetrainBlocked, match="the request of 2025-03-31 holds it"):
        # A run that passed retrain_due before the request was recorded (days scored at once).
        request_retrain(run_of(DAYS[1], "score-race"), first, Stores.from_settings())
    with platform.connect() as conn:
        assert conn.execute(sa.select(retrain_requests.c.ds)).scalars().all() == [DAYS[2]]


def test_the_cli_shows_a_scored_day_and_its_drift(world, capsys):
    from include import cli

    summary = score(DAYS[2])
    capsys.readouterr()  # the task's logs
    assert cli.main(["predictions", "churn", "--ds", DAYS[2].isoformat(), "--json"]) == 0
    [day] = json.loads(capsys.readouterr().out)
    assert day["rows"] == day["rows_in"] == summary.rows_scored
    assert (day["model_version"], day["model_versions"]) == (2, 1)
    assert 0 <= day["score_min"] <= day["score_mean"] <= day["score_max"] <= 1
    assert sum(day["score_histogram"]) == day["rows"]

    assert cli.main(["predictions", "churn", "--ds", DAYS[2].isoformat()]) == 0
    text = capsys.readouterr().out
    assert "score_mean" in text and "0.9-1.0" in text

    assert cli.main(["drift", "churn", "--ds", DAYS[2].isoformat(), "--json"]) == 0
    features = json.loads(capsys.readouterr().out)
    assert {f["feature"] for f in features} >= {"tenure", "Contract"}
    assert [f["psi"] for f in features] == sorted((f["psi"] for f in features), reverse=True)
    assert cli.main(["drift", "churn"]) == 0
    assert DAYS[2].isoformat() in capsys.readouterr().out


def run_score_dag(day: dt.date):
    """One run of the real `churn_score` DAG through `dag.test()`; its task instances' states."""
    run = run_dag("churn_score", day)
    return run.state, task_states(run)


def retrain_events() -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        events = (
            session.query(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetModel.name == "churn_retrain_request")
        )
        return [event.extra for event in events]


@pytest.mark.parametrize("platform", ["sqlite"], indirect=True)
def test_a_healthy_scoring_run_logs_no_error_and_no_deprecation(airflow_db, world):
    """`airflow dags test` in a fresh process, as an operator runs it: its output is the task logs
    (a read past the last shard's result used to log an `[error] XCom not found`)."""
    platform, lake, _ = world
    ordinary_day(lake, platform, DAYS[0])
    lines = dags_test_output("churn_score", DAYS[0])
    assert any("shard(s)" in line and "wrote" in line for line in lines), lines[-20:]
    assert [line for line in lines if "[error" in line] == []
    # `dags test` runs the task API in process through starlette's test client, which warns about
    # httpx itself; a scheduler's run has no test client.
    deprecations = [line for line in lines if "Deprecat" in line and "starlette.testclient" not in line]
    assert deprecations == []


@pytest.mark.parametrize("platform", ["postgres"], indirect=True)
def test_the_score_dag_scores_a_day_and_asks_for_a_retrain_once(airflow_db, world):
    platform, lake, _ = world
    ordinary_day(lake, platform, DAYS[0])
    state, tasks = run_score_dag(DAYS[0])
    assert state == "success"
    assert tasks["wait_for_partition"] == tasks["score_shard"] == tasks["publish"] == "success"
    assert tasks["request_retrain"] == "skipped"  # no alert on an ordinary day
    assert len(day_predictions(platform, DAYS[0])) > 0

    drifted = big_day(lake)
    drifted["Contract"] = "Two year"
    for day in DAYS[1:]:
        write_frame(lake, f"raw/churn/ds={day}/part-0.parquet", drifted)
    # The run records follow (as a real ingest's would): the sensor waits while they disagree.
    with platform.begin() as conn:
        conn.execute(
            sa.update(ingest_runs).where(ingest_runs.c.ds.in_(DAYS[1:])).values(rows_written=len(drifted))
        )
    before = len(retrain_events())
    state, tasks = run_score_dag(DAYS[1])  # drifting, for one day so far
    assert (state, tasks["retrain_due"], tasks["request_retrain"]) == ("success", "success", "skipped")
    state, tasks = run_score_dag(DAYS[2])  # the second day running: the drift persists
    assert (state, tasks["request_retrain"]) == ("success", "success")
    events = retrain_events()
    assert len(events) == before + 1
    assert events[-1]["ds"] == DAYS[2].isoformat() and "Contract" in events[-1]["features"]


def test_two_runs_of_the_same_day_at_once_leave_one_prediction_set(world):
    """A backfill and the nightly run of one day (runs of their own), together: all succeed, one set
    of rows remains."""
    from concurrent.futures import ThreadPoolExecutor

    platform, lake, _ = world
    with ThreadPoolExecutor(max_workers=4) as pool:
        summaries = list(pool.map(lambda n: score(DAYS[2], run=f"run{n}"), range(4)))
    assert lake.list_keys("staging/") == []
    table = day_predictions(platform, DAYS[2])
    assert {s.rows_scored for s in summaries} == {len(table)}
    assert table["entity_id"].is_unique
    with platform.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(score_runs)).scalar() == 1


def test_a_partition_missing_a_feature_fails_naming_it_and_writes_nothing(world):
    platform, lake, _ = world
    key = f"raw/churn/ds={DAYS[2]}/part-0.parquet"
    write_frame(lake, key, read_frame(lake, key).drop(columns=["Contract"]))
    with pytest.raises(ScoreError, match=r"ds=2025-03-31/part-0.parquet: missing column\(s\) \['Contract'\]"):
        score(DAYS[2])
    assert day_predictions(platform, DAYS[2]).empty


GROUP_ROWS = 100


def many_row_groups(lake, platform, day: dt.date) -> int:
    """Make `day` every customer, in row groups of `GROUP_ROWS` rows (as ingest writes them, smaller);
    its run record follows. Returns the rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = big_day(lake).sort_values(SPEC.entity_id, ignore_index=True)  # as ingest sorts a day
    path = lake.root / f"raw/churn/ds={day}/part-0.parquet"
    pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), path, row_group_size=GROUP_ROWS)
    with platform.begin() as conn:
        conn.execute(sa.update(ingest_runs).where(ingest_runs.c.ds == day).values(rows_written=len(rows)))
    return len(rows)


def run_record(platform: sa.Engine, day: dt.date) -> dict:
    with platform.connect() as conn:
        record = conn.execute(sa.select(score_runs).where(score_runs.c.ds == day)).mappings().one()
    return {k: v for k, v in record.items() if k not in ("run_id", "recorded_at", "shard_costs")}


def recorded_costs(platform: sa.Engine, day: dt.date) -> dict | None:
    """The shard costs the day's scoring run recorded."""
    with platform.connect() as conn:
        return conn.execute(sa.select(score_runs.c.shard_costs).where(score_runs.c.ds == day)).scalar_one()


def drift_figures(platform: sa.Engine, day: dt.date) -> list[dict]:
    with platform.connect() as conn:
        query = sa.select(drift_measures).where(drift_measures.c.ds == day).order_by(drift_measures.c.feature)
        return [dict(row) for row in conn.execute(query).mappings()]


def lake_day(lake, zone: str, day: dt.date) -> list[str]:
    return lake.list_keys(f"{zone}/churn/ds={day}/")


SAME = ["entity_id", "model_version", "score", "predicted_label"]


def test_one_shard_and_eight_give_the_same_day_and_a_rerun_leaves_no_old_layout(world, tmp_path, monkeypatch):
    from include.scoring.task import plan_shards

    platform, lake, registry = world
    rows = many_row_groups(lake, platform, DAYS[2])
    with_batch_rows(tmp_path, monkeypatch, 40, shard_rows=rows)
    assert len(plan_shards(run_of(DAYS[2], "plan"), Stores.from_settings())) == 1
    one = score(DAYS[2])
    one_rows, one_record = day_predictions(platform, DAYS[2]), run_record(platform, DAYS[2])
    one_drift = drift_figures(platform, DAYS[2])

    plan = plan_shards(run_of(DAYS[2], "plan"), Stores.from_settings(), count=8)
    assert [s.count for s in plan] == [8] * 8
    assert sum(s.rows for s in plan) == rows
    eight = score(DAYS[2], shards=8)

    assert eight == one
    eight_rows = day_predictions(platform, DAYS[2])
    pd.testing.assert_frame_equal(eight_rows[SAME], one_rows[SAME], check_exact=True)
    assert run_record(platform, DAYS[2]) == one_record
    assert drift_figures(platform, DAYS[2]) == one_drift
    assert len(eight_rows) == rows and eight_rows["entity_id"].is_unique

    # The merged counts are those one pass over the whole file gives, the way one task scored a day
    # (its batches run across row groups: BLAS may move a score's last bit, so the mean is approximate).
    figures, drifts = single_pass(lake, registry, DAYS[2])
    assert one_record["score_mean"] == pytest.approx(figures.pop("score_mean"), rel=1e-12)
    assert {k: one_record[k] for k in figures} == figures
    assert [{k: d[k] for k in drifts[0]} for d in sorted(one_drift, key=lambda d: d["feature"])] == sorted(
        drifts, key=lambda d: d["feature"]
    )

    score(DAYS[2], shards=3)
    assert len(day_predictions(platform, DAYS[2])) == rows
    assert lake_day(lake, "predictions", DAYS[2]) == [
        f"predictions/churn/ds={DAYS[2]}/shard-{i:04d}-of-0003.parquet" for i in range(3)
    ]
    assert lake.list_keys("staging/") == []
    in_lake = lake_predictions(lake, DAYS[2])
    assert in_lake["entity_id"].tolist() == one_rows["entity_id"].tolist()
    assert in_lake["score"].tolist() == one_rows["score"].tolist()


def single_pass(lake, registry, day: dt.date) -> tuple[dict, list[dict]]:
    """The day's figures and drift from one read of the whole file by the champion, as one task
    scored a day before shards: batches that run across row groups, one `Tally`, one `DriftCounter`."""
    import pyarrow.parquet as pq

    from include.monitoring.counting import DriftCounter
    from include.monitoring.reference import Reference
    from include.registry.model_files import load_version_model
    from include.scoring.score import Scorer, Tally

    version = registry.champion_as_of("churn", day)
    model = load_version_model(lake, version)
    scorer = Scorer(SPEC, model.model, version.version, model.threshold, day, dt.datetime.now(dt.UTC))
    tally, drift = Tally(), DriftCounter(Reference.from_dict(version.reference), SPEC)
    parquet = pq.ParquetFile(lake.root / f"raw/churn/ds={day}/part-0.parquet")
    batches = parquet.iter_batches(batch_size=40, columns=[SPEC.entity_id, *SPEC.features.all])
    for _ in scorer.predict(batches, tally, drift.add):
        pass
    return tally.figures(), [d.to_dict() for d in drift.drifts()]


def test_a_shard_run_twice_or_retried_leaves_no_duplicate_and_no_stale_row(world, tmp_path, monkeypatch):
    from include.scoring.task import plan_shards, publish, resolve_model, score_shard

    platform, lake, _ = world
    rows = many_row_groups(lake, platform, DAYS[2])
    with_batch_rows(tmp_path, monkeypatch, 40)
    run, stores = run_of(DAYS[2], "retried"), Stores.from_settings()
    resolved, plan = resolve_model(run, stores), plan_shards(run, stores, count=8)
    results = [score_shard(run, resolved, shard, stores) for shard in plan]
    # A failed first attempt of shard 3 left a partial file; its retry, and a second run, replace it.
    lake.put_bytes(plan[3].key, b"a partial write")
    results[3] = score_shard(run, resolved, plan[3], stores)
    results[3] = score_shard(run, resolved, plan[3], stores)
    summary = publish(run, resolved, plan, results, stores)
    publish_again = publish(
        run, resolved, plan, [score_shard(run, resolved, s, stores) for s in plan], stores
    )

    table = day_predictions(platform, DAYS[2])
    assert summary == publish_again
    assert len(table) == rows == summary.rows_scored
    assert table["entity_id"].is_unique
    assert lake.list_keys("staging/") == []
    with pytest.raises(ScoreError, match=r"shard results .* are not the plan's"):
        publish(run, resolved, plan, results[:-1], stores)


def test_readers_see_the_old_day_or_the_new_one_never_a_mix(world, tmp_path, monkeypatch):
    import threading
    import time

    from include.scoring import score as scoring

    platform, lake, _ = world
    rows = many_row_groups(lake, platform, DAYS[2])
    with_batch_rows(tmp_path, monkeypatch, 40, shard_rows=rows // 8 + 1)
    score(DAYS[2], model_version=1)
    read_staged = scoring.read_staged

    def slow(*args, **kwargs):
        for batch in read_staged(*args, **kwargs):
            time.sleep(0.01)  # the publish's transaction stays open across many bulk writes
            yield batch

    monkeypatch.setattr(scoring, "read_staged", slow)
    seen, done = set(), threading.Event()
    count = sa.select(predictions.c.model_version, sa.func.count()).where(predictions.c.ds == DAYS[2])

    def read() -> None:
        while not done.is_set():
            with platform.connect() as conn:
                seen.add(tuple(conn.execute(count.group_by(predictions.c.model_version)).all()))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        score(DAYS[2], model_version=2)
    finally:
        done.set()
        reader.join()
    assert seen <= {((1, rows),), ((2, rows),)}
    assert ((2, rows),) in seen


@pytest.mark.parametrize("platform", ["sqlite"], indirect=True)
def test_the_score_dag_maps_one_task_per_shard_named_by_its_place(airflow_db, world, tmp_path, monkeypatch):
    platform, lake, _ = world
    rows = many_row_groups(lake, platform, DAYS[2])
    with_batch_rows(tmp_path, monkeypatch, 1_000, shard_rows=rows // 4)
    # Four workers on the score queue: a shard each (the day is far too small for more rounds).
    monkeypatch.setattr("include.scoring.task.score_queue_workers", lambda queue: 4)
    run = run_dag("churn_score", DAYS[2])

    assert run.state == "success"
    shards = sorted(
        (ti.map_index, ti.rendered_map_index, ti.state)
        for ti in run.get_task_instances()
        if ti.task_id == "score_shard"
    )
    assert shards == [(i, f"shard {i + 1} of 4", "success") for i in range(4)]
    assert len(day_predictions(platform, DAYS[2])) == rows
    assert lake.list_keys("staging/") == []

    # The shards' measured costs size the next plan; a day scored in one process measures no task's
    # start-up, so it records none and leaves the tasks' costs in place.
    measured = last_costs(Stores.from_settings(), "churn")
    assert measured == ShardCosts(**recorded_costs(platform, DAYS[2])) != ShardCosts()
    score(DAYS[1], run="one-process")
    assert recorded_costs(platform, DAYS[1]) is None
    assert last_costs(Stores.from_settings(), "churn") == measured


def test_a_day_with_no_row_to_score_fails_at_the_publish_and_writes_nothing(world):
    platform, lake, _ = world
    key = f"raw/churn/ds={DAYS[2]}/part-0.parquet"
    rows = read_frame(lake, key)
    write_frame(lake, key, rows.assign(customerID=""))
    with pytest.raises(
        ScoreError, match=rf"no row to score \({len(rows)} in, .*'customerID is missing': {len(rows)}"
    ):
        score(DAYS[2])
    assert day_predictions(platform, DAYS[2]).empty
    with platform.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(score_runs)).scalar() == 0
