"""The measured paths, each run alone in a fresh process:
`python -m tools.bench.paths NAME BENCH_FILE [ARG ...]`.

A path's setup (loading the model, or the input a raw stage starts from) runs before the clock starts;
the clock covers the path only. The process prints one JSON line: seconds, rows and its peak RSS,
plus, for a path that writes predictions, how many the table holds for the day afterwards, and for
a scoring shard what it counted (for the publish to merge).

The sharded paths call the scoring DAG's own stage functions (`include.scoring.task.score_shard`
and `publish`) on the bench's stores: the bench measures the product, not a copy of it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import sqlalchemy as sa

from include.ingest.pipeline import ingest_partition, read_sources
from include.io.bulk import adbc_connection, query_cursor
from include.io.memory import peak_rss_mb
from include.io.stores import LocalStore
from include.partition import Partition
from include.platform.tables import predictions
from include.runs import RunFacts, Stores
from include.scoring.task import ShardResult, publish, resolve_model, score_shard
from tools.bench.data import DAY, Bench

if TYPE_CHECKING:
    from include.scoring.score import Shard

# The scoring modules (scikit-learn, ~100 MB) are imported inside the scoring paths only, so that an
# ingest path's peak RSS is what an ingest task holds.

Work = Callable[[], int]
Setup = Callable[..., Work]
WRITES_PREDICTIONS = (
    "scoring.project",
    "scoring.naive",
    "scoring.raw_write",
    "sharded_scoring.one_task",
    "sharded_scoring.publish",
    "sharded_scoring.swap",
    "sharded_scoring.delete_copy",
)
PATHS: dict[str, Setup] = {}
# What a path reports beside its figures (a shard's counts), set by its work.
EXTRA: dict[str, Any] = {}
RUN_ID = "bench"
PLAIN_PREDICTIONS = "bench_predictions_plain"


def path(name: str) -> Callable[[Setup], Setup]:
    """Register a path's setup, which returns the work to time (the work returns its rows)."""

    def register(setup: Setup) -> Setup:
        PATHS[name] = setup
        return setup

    return register


def day_query(bench: Bench) -> sa.Select:
    """The SQL source's rows of the day, as `read_sql_day` selects them."""
    source = bench.spec.source("snapshots")
    day = sa.column(source.date_column, sa.Date)
    return (
        sa.select(*(sa.column(c) for c in source.columns))
        .select_from(sa.table(source.table))
        .where(day >= DAY, day < DAY + dt.timedelta(days=1))
    )


@path("scoring.naive")
def scoring_naive(bench: Bench) -> Work:
    """The usual hand-written way: read the day's partition whole, predict it all, `to_sql`
    (method=None: executemany)."""
    spec, model, engine = bench.spec, bench.model(), bench.engine()
    key = (predictions.c.use_case == spec.name) & (predictions.c.ds == DAY)

    def work() -> int:
        frame = pd.read_parquet(bench.lake.root / bench.partition_key, columns=bench.columns)
        outputs = model.outputs(frame[list(spec.features.all)])
        out = pd.DataFrame(
            {
                "use_case": spec.name,
                "ds": DAY,
                "entity_id": frame[spec.entity_id],
                "model_version": 1,
                **prediction_columns(outputs, model.task, model.classes, model.threshold),
                "scored_at": dt.datetime.now(dt.UTC),
            }
        )
        with engine.begin() as conn:
            conn.execute(predictions.delete().where(key))
            out.to_sql(predictions.name, conn, if_exists="append", index=False)
        return len(out)

    return work


def prediction_columns(
    outputs: np.ndarray, task: str, classes: Sequence[object] | None, threshold: float
) -> dict[str, Any]:
    """The prediction columns the task fills, from the model's outputs, as the `Scorer` fills them:
    binary, the score and its label at `threshold`; regression, the predicted value as the score (no
    label); multiclass, the top class's probability, index and name, and every class's probability."""
    if task == "regression":
        return {"score": outputs}
    if task == "multiclass":
        top = outputs.argmax(axis=1)
        return {
            "score": outputs[np.arange(len(outputs)), top],
            "predicted_label": top.astype("int16"),
            "predicted_class": np.array([str(c) for c in classes or ()], dtype=object)[top],
            "class_probabilities": [json.dumps(row) for row in np.round(outputs, 12).tolist()],
        }
    return {"score": outputs, "predicted_label": (outputs >= threshold).astype("int16")}


def adbc_read(engine: sa.Engine, query: sa.Select) -> int:
    with query_cursor(engine, query) as cursor:
        return cursor.fetch_arrow_table().num_rows


@path("scoring.raw_read")
def scoring_raw_read(bench: Bench) -> Work:
    """The columns the model needs, read whole from the day's partition."""
    return lambda: pq.read_table(bench.lake.root / bench.partition_key, columns=bench.columns).num_rows


@path("scoring.raw_predict")
def scoring_raw_predict(bench: Bench) -> Work:
    """The model's outputs (`FittedModel.outputs`) alone on the frame in memory, in `batch_rows`
    slices (one call on all N rows is slower, and holds GBs), the frame converted as the project
    converts it (`to_frame`)."""
    from include.scoring.score import to_frame

    model = bench.model()
    table = pq.read_table(bench.lake.root / bench.partition_key, columns=bench.columns).combine_chunks()
    frame = to_frame(table.to_batches()[0], bench.spec.entity_id)
    slices = [
        frame.iloc[start : start + bench.batch_rows] for start in range(0, len(frame), bench.batch_rows)
    ]
    return lambda: sum(len(model.outputs(rows)) for rows in slices)


@path("scoring.raw_write")
def scoring_raw_write(bench: Bench) -> Work:
    """`adbc_ingest` of the day's predictions, built beforehand (outputs drawn at random: COPY sends
    bytes) and sorted by id within each `batch_rows` chunk, the order `replace_partition` sends them in."""
    from include.scoring.score import PREDICTION_SCHEMA

    engine, made = bench.engine(), day_predictions(bench)
    chunks = made.to_batches(bench.batch_rows)
    table = pa.Table.from_batches([chunk.sort_by("entity_id") for chunk in chunks], PREDICTION_SCHEMA)

    def work() -> int:
        with adbc_connection(engine) as conn:
            with conn.cursor() as cursor:
                rows = cursor.adbc_ingest(predictions.name, table, mode="append")
            conn.commit()
        return rows

    return work


@path("ingest.project")
def ingest_project(bench: Bench) -> Work:
    engine, partition = bench.engine(), Partition(DAY)
    lake = LocalStore(bench.workdir / "ingested-lake")

    def work() -> int:
        raw = read_sources(bench.spec, partition, lambda _: engine, lambda _: bench.bucket)
        result = ingest_partition(bench.spec, partition, raw=raw, lake=lake, platform=engine, run_id="bench")
        return result.counts.written

    return work


@path("ingest.naive")
def ingest_naive(bench: Bench) -> Work:
    """`read_sql` + `read_csv` + merge + `to_parquet`, with no validation at all."""
    engine, out = bench.engine(), bench.workdir / "naive.parquet"

    def work() -> int:
        rows = pd.read_sql(day_query(bench), engine)
        billing = pd.read_csv(bench.bucket.root / bench.billing_key)
        frame = rows.merge(billing, on=bench.spec.entity_id)
        frame.to_parquet(out, index=False)
        return len(frame)

    return work


@path("ingest.raw_read")
def ingest_raw_read(bench: Bench) -> Work:
    engine = bench.engine()
    return lambda: adbc_read(engine, day_query(bench))


@path("ingest.raw_csv")
def ingest_raw_csv(bench: Bench) -> Work:
    return lambda: pacsv.read_csv(bench.bucket.root / bench.billing_key).num_rows


@path("ingest.raw_write")
def ingest_raw_write(bench: Bench) -> Work:
    table = pq.read_table(bench.lake.root / bench.partition_key)
    out = bench.workdir / "raw-write.parquet"

    def work() -> int:
        pq.write_table(table, out, compression="zstd")
        return table.num_rows

    return work


def bench_shards(bench: Bench, count: int) -> list[Shard]:
    """The bench day's partition split as the DAG's `plan_shards` splits a day, into `count` shards."""
    from include.io.lake import shard_key
    from include.scoring.score import partition_row_groups, plan_day

    group_rows, starts = partition_row_groups(bench.lake, bench.partition_key, bench.columns)
    return plan_day(group_rows, starts, count, lambda i, n: shard_key(bench.spec.name, DAY, RUN_ID, i, n))


def bench_run(bench: Bench) -> tuple[RunFacts, Stores]:
    """The bench day's scoring run, with the bench's registered model, and the bench's stores."""
    run = RunFacts.of(bench.spec.name, DAY, RUN_ID, bench.spec_dir, model_version=bench.version)
    return run, Stores(bench.lake, bench.engine())


def score_bench_shard(bench: Bench, index: int, count: int) -> ShardResult:
    """Shard `index` (from 0) of `count` of the bench's day, scored by the DAG's `score_shard`.

    Raises:
        ValueError: when the partition has fewer than `count` row groups.
    """
    shards = bench_shards(bench, count)
    if len(shards) != count:
        raise ValueError(f"count: the bench day has {len(shards)} row groups, fewer than {count} shards")
    run, stores = bench_run(bench)
    return score_shard(run, resolve_model(run, stores), shards[index], stores)


def publish_bench_day(bench: Bench, results: list[ShardResult]) -> int:
    """The shards' counts merged and their staged predictions published by the DAG's `publish`."""
    run, stores = bench_run(bench)
    published = publish(run, resolve_model(run, stores), bench_shards(bench, len(results)), results, stores)
    return published.rows_scored


@path("scoring.project")
@path("sharded_scoring.one_task")
def one_task(bench: Bench) -> Work:
    """The DAG's path for a day as one task: its partition scored as one shard by `score_shard`, then
    published (PostgreSQL and the lake) by `publish`, in one process (what `run_scoring` does)."""
    return lambda: publish_bench_day(bench, [score_bench_shard(bench, 0, 1)])


@path("sharded_scoring.shard")
def sharded_shard(bench: Bench, index: str, count: str) -> Work:
    """Shard `index` of `count` alone (its counts reported for the publish)."""

    def work() -> int:
        counts = score_bench_shard(bench, int(index), int(count))
        EXTRA["counts"] = counts.to_dict()
        return counts.tally["rows_in"]

    return work


@path("sharded_scoring.publish")
def sharded_publish(bench: Bench, results_file: str) -> Work:
    results = [ShardResult.from_dict(r) for r in json.loads(Path(results_file).read_text())]
    return lambda: publish_bench_day(bench, results)


def day_predictions(bench: Bench) -> pa.Table:
    """The day's predictions in its task's columns, made beforehand from outputs drawn at random
    (a multiclass row's probabilities from a flat Dirichlet), in `batch_rows` chunks."""
    from include.scoring.score import PREDICTION_SCHEMA
    from include.training.preprocess import label_classes

    spec = bench.spec
    ids = pq.read_table(bench.lake.root / bench.partition_key, columns=[spec.entity_id]).column(0)
    n, rng, classes = len(ids), np.random.default_rng(0), label_classes(spec)
    outputs = rng.random(n) if classes is None else rng.dirichlet(np.ones(len(classes)), n)
    predicted = prediction_columns(outputs, spec.task, classes, 0.5)
    made = {
        "use_case": pa.repeat(pa.scalar(spec.name), n),
        "ds": pa.repeat(pa.scalar(DAY, pa.date32()), n),
        "entity_id": ids,
        "model_version": pa.repeat(pa.scalar(1, pa.int32()), n),
        "scored_at": pa.repeat(pa.scalar(dt.datetime.now(dt.UTC), pa.timestamp("us", tz="UTC")), n),
        **{name: pa.array(values, PREDICTION_SCHEMA.field(name).type) for name, values in predicted.items()},
    }
    columns = [made.get(f.name, pa.nulls(n, f.type)) for f in PREDICTION_SCHEMA]
    return pa.table(columns, schema=PREDICTION_SCHEMA)


def replace_a_full_day(bench: Bench, table: sa.Table) -> Work:
    """`replace_partition` of a day that already holds its N rows (put there before the clock)."""
    from include.platform.day_swap import replace_partition
    from include.scoring.score import PREDICTION_SCHEMA

    engine, made = bench.engine(), day_predictions(bench)
    key = {"use_case": bench.spec.name, "ds": DAY}
    replace_partition(engine, table, key, PREDICTION_SCHEMA, made.to_batches(bench.batch_rows))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("CHECKPOINT")
    return lambda: replace_partition(engine, table, key, PREDICTION_SCHEMA, made.to_batches(bench.batch_rows))


@path("sharded_scoring.swap")
def sharded_swap(bench: Bench) -> Work:
    """PostgreSQL's path: the day's partition swapped for a freshly loaded and indexed table."""
    return replace_a_full_day(bench, predictions)


@path("sharded_scoring.delete_copy")
def sharded_delete_copy(bench: Bench) -> Work:
    """The path before partitions: DELETE the day's N rows, COPY N new, into a plain table."""
    columns = (
        sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable) for c in predictions.columns
    )
    plain = sa.Table(PLAIN_PREDICTIONS, sa.MetaData(), *columns)
    engine = bench.engine()
    plain.drop(engine, checkfirst=True)
    plain.create(engine)
    work = replace_a_full_day(bench, plain)

    def then_count() -> int:
        rows = work()
        EXTRA["predictions"] = rows
        return rows

    return then_count


def load_airflow_plugins() -> None:
    """Load Airflow's plugins, as its task runner does (for their listeners) before a task's code
    runs: the product's lineage reports look them up, and a task never pays that inside its work."""
    from airflow.sdk.plugins_manager import get_hook_lineage_readers_plugins

    get_hook_lineage_readers_plugins()


def measure(name: str, bench: Bench, *args: str) -> dict[str, Any]:
    """Set the path up, time it, and report its figures with this process's peak RSS."""
    load_airflow_plugins()
    work = PATHS[name](bench, *args)
    started = time.perf_counter()
    rows = work()
    seconds = time.perf_counter() - started
    figures = {
        "seconds": seconds,
        "rows": rows,
        "peak_rss_mb": peak_rss_mb(),
        **EXTRA,
    }
    if name in WRITES_PREDICTIONS and "predictions" not in figures:
        key = (predictions.c.use_case == bench.spec.name) & (predictions.c.ds == DAY)
        with bench.engine().connect() as conn:
            count = sa.select(sa.func.count()).select_from(predictions).where(key)
            figures["predictions"] = conn.execute(count).scalar_one()
    return figures


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    print(json.dumps(measure(sys.argv[1], Bench.load(Path(sys.argv[2])), *sys.argv[3:])))
