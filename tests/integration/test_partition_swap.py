"""PostgreSQL's day swap: days replaced at once (`replace_partition`) neither deadlock nor mix, a day's
old partition (or its rows in the default partition) is gone after the swap, and a day published
from its shards' tables (`load_shard`, `attach_shards`) appears whole to readers, never in part."""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pytest
import sqlalchemy as sa

from include.platform.day_swap import attach_shards, load_shard, replace_partition
from include.platform.tables import predictions
from include.scoring.score import PREDICTION_SCHEMA

pytestmark = pytest.mark.integration

DAYS = [dt.date(2025, 3, 1) + dt.timedelta(days=n) for n in range(4)]


def day_rows(ds: dt.date, version: int, rows: int) -> list[pa.RecordBatch]:
    ids = [f"{version}-{i:05d}" for i in range(rows)]
    batch = pa.record_batch(
        [
            pa.array(["churn"] * rows),
            pa.array([ds] * rows, pa.date32()),
            pa.array(ids),
            pa.array([version] * rows, pa.int32()),
            pa.array([0.5] * rows),
            pa.array([1] * rows, pa.int16()),
            pa.array([dt.datetime(2025, 4, 1, tzinfo=dt.UTC)] * rows, pa.timestamp("us", tz="UTC")),
            pa.nulls(rows, pa.string()),
            pa.nulls(rows, pa.string()),
        ],
        schema=PREDICTION_SCHEMA,
    )
    return [batch.slice(0, rows // 2), batch.slice(rows // 2)]


def replace(engine: sa.Engine, ds: dt.date, version: int, rows: int) -> int:
    key = {"use_case": "churn", "ds": ds}
    return replace_partition(engine, predictions, key, PREDICTION_SCHEMA, day_rows(ds, version, rows))


def versions_by_day(engine: sa.Engine) -> dict:
    query = sa.select(predictions.c.ds, predictions.c.model_version, sa.func.count()).group_by(
        predictions.c.ds, predictions.c.model_version
    )
    with engine.connect() as conn:
        return {(ds, version): count for ds, version, count in conn.execute(query)}


def partitions(engine: sa.Engine) -> list[str]:
    query = (
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'predictions'::regclass ORDER BY 1"
    )
    with engine.connect() as conn:
        return list(conn.execute(sa.text(query)).scalars())


STRAY = {
    "use_case": "churn",
    "ds": DAYS[0],
    "entity_id": "stray",
    "model_version": 9,
    "score": 0.1,
    "predicted_label": 0,
    "scored_at": dt.datetime(2025, 4, 1, tzinfo=dt.UTC),
}
ROWS = {1: 300, 2: 500, 3: 400}


def test_days_swapped_at_once_each_end_whole_in_their_own_partition(pg_engine):
    with pg_engine.begin() as conn:
        conn.execute(predictions.insert(), [STRAY])  # written past the swap: into the default partition
    for ds in DAYS:
        replace(pg_engine, ds, 1, ROWS[1])

    # Four days at once, two of them twice (a backfill and the nightly run): no deadlock, no mix.
    jobs = [(ds, 2) for ds in DAYS] + [(DAYS[0], 3), (DAYS[1], 3)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        written = list(pool.map(lambda job: replace(pg_engine, *job, ROWS[job[1]]), jobs))

    assert written == [ROWS[version] for _, version in jobs]
    found = versions_by_day(pg_engine)
    assert sorted(ds for ds, _ in found) == DAYS  # one model per day, the stray row gone
    assert all(found[(ds, 2)] == ROWS[2] for ds in DAYS[2:])
    assert all(version in (2, 3) and count == ROWS[version] for (_, version), count in found.items())
    assert partitions(pg_engine) == sorted(
        ["predictions__default", *(f"predictions__churn__{ds:%Y%m%d}" for ds in DAYS)]
    )


def publish_in_shards(engine: sa.Engine, ds: dt.date, version: int, rows: int, shards: int) -> None:
    """The day's rows (ids in order) loaded as `shards` shard tables, then attached as the day."""
    key, run = {"use_case": "churn", "ds": ds}, f"run-{version}"
    batch = pa.Table.from_batches(day_rows(ds, version, rows))
    size = rows // shards
    loaded = []
    for index in range(shards):
        part = batch.slice(index * size, size if index < shards - 1 else None)
        lower = part["entity_id"][0].as_py() if index else None
        upper = batch["entity_id"][(index + 1) * size].as_py() if index < shards - 1 else None
        name, _ = load_shard(
            engine, predictions, key, run, index, (lower, upper), PREDICTION_SCHEMA, part.to_batches()
        )
        loaded.append((name, lower, upper))
    attach_shards(engine, predictions, key, run, loaded)


def test_readers_see_a_day_published_from_shards_whole_or_not_at_all(pg_engine):
    publish_in_shards(pg_engine, DAYS[0], 1, 3_000, 3)
    seen, stop = [], threading.Event()

    def read() -> None:
        with pg_engine.connect() as conn:
            while not stop.is_set():
                seen.append(
                    tuple(
                        conn.execute(
                            sa.select(predictions.c.model_version, sa.func.count())
                            .where(predictions.c.ds == DAYS[0])
                            .group_by(predictions.c.model_version)
                        ).all()
                    )
                )
                conn.rollback()

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for version in (2, 3, 4):
            publish_in_shards(pg_engine, DAYS[0], version, 3_000 + version, version)
    finally:
        stop.set()
        reader.join()

    # Each read saw one version's whole day: never two versions, never part of one.
    assert set(seen) <= {((1, 3_000),), *(((version, 3_000 + version),) for version in (2, 3, 4))}
    assert seen[-1] == ((4, 3_004),)
    assert versions_by_day(pg_engine) == {(DAYS[0], 4): 3_004}
    with pg_engine.connect() as conn:  # the replaced days' shard tables went with them
        tables = conn.execute(
            sa.text(
                "SELECT count(*) FROM pg_class WHERE relname LIKE 'predictions__churn%' AND relkind = 'r'"
            )
        ).scalar()
    assert tables == 4
