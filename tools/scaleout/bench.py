"""The Celery half of `make bench`'s `sharded_scoring`: the bench's day scored by the real
`churn_score` DAG as K shards on 1 and on 2 Celery workers.

The stack is `make up-celery`'s (tools/scaleout/stack.py) on fresh databases and a temporary folder,
started once per worker count. It scores the very day and model of the bench's other paths
(tools/bench/data.py): the day's partition (in ingest's row groups) is copied into the stack's
lake with an ingest run record, and the bench's model file is registered (the runs name its
version). Per worker count: the run's wall time (its start to its end), rows/s, each phase from the
task instances, and each worker's peak RSS, sampled twice a second over its whole process tree (the
Celery main process, its pool child, the task supervisor and the task), and each shard task's own
peak (VmHWM, which its result reports). `make bench` files them
under `"sharded_scoring"` -> `"celery"` in `.bench/results.json`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import tempfile
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from include.io.stores import LocalStore
from include.usecases.spec import UseCase, get_spec
from tools.bench.data import Bench, register_bench_model
from tools.demo.airflow_api import AirflowApi, trigger_run, wait_for_dag, wait_for_runs
from tools.scaleout.stack import USER, CeleryAirflow, CeleryLayout, check_services, prepare, stack_env

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
DAY = dt.date(2025, 3, 31)  # the bench's day
# Its own Redis database (make up-celery: 3, the Celery end-to-end test: 5), emptied first.
BROKER_URL = "redis://127.0.0.1:6379/6"


def day_rows(spec: UseCase, rows: int) -> pa.Table:
    """`rows` rows drawn from the real Telco rows under unique ids, as `make bench` makes them, with
    the `ds` column of an ingested partition (DAY)."""
    from tools.bench.data import real_rows, resample

    table = resample(real_rows(spec), spec, rows)
    midnight = dt.datetime.combine(DAY, dt.time())
    return table.append_column("ds", pa.repeat(pa.scalar(midnight, pa.timestamp("us")), rows))


def write_day(path: Path, spec: UseCase, table: pa.Table) -> None:
    """Write `table` to `path` as ingest writes a partition: Parquet sorted by the entity id, in
    `ingest.row_group_rows` row groups."""
    import pyarrow.parquet as pq

    sorted_table = table.sort_by(spec.entity_id)
    pq.write_table(sorted_table, path, compression="zstd", row_group_size=spec.ingest.row_group_rows)


def put_day(lake: LocalStore, platform: sa.Engine, spec: UseCase, partition: Path) -> int:
    """Copy the Parquet file `partition` into the lake as DAY's partition (renamed into place) and
    replace DAY's ingest run record with one that counts it; the partition's row groups."""
    import shutil

    import pyarrow.parquet as pq

    from include.io.lake import RAW_ZONE, partition_key
    from include.platform.day_swap import replace_rows
    from include.platform.tables import ingest_runs

    key = partition_key(RAW_ZONE, spec.name, DAY)
    path = lake.root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    shutil.copyfile(partition, temporary)
    temporary.rename(path)
    footer = pq.read_metadata(path)
    rows = footer.num_rows
    sources = {source.name: rows for source in spec.sources}
    record = {
        "use_case": spec.name,
        "ds": DAY,
        "run_id": "bench-day",
        "rows_read": sources,
        "rows_quarantined": dict.fromkeys(sources, 0),
        "rows_joined": rows,
        "rows_written": rows,
        "partition_uri": lake.uri(key),
        "quarantine_uri": None,
        "quarantine_reasons": {},
    }
    with platform.begin() as conn:
        replace_rows(conn, ingest_runs, {"use_case": spec.name, "ds": DAY}, [record])
    return footer.num_row_groups


class TreeRss:
    """Samples the memory of each worker's process tree (a process and all its descendants) twice a
    second, keeping per worker the peaks of the tree's RSS sum, of its PSS sum and of its largest
    process's RSS.

    A forked process's RSS counts the pages it still shares with its parent (Airflow's task process
    is forked from its supervisor, itself from the Celery pool process), so the RSS sum counts them
    once per process; the PSS sum counts each shared page once, split among its sharers: what the
    worker costs the machine.
    """

    def __init__(self, airflow: CeleryAirflow, every: float = 0.5) -> None:
        self.airflow, self.every = airflow, every
        self.peaks: dict[str, dict[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        import psutil

        for worker in self.airflow.layout.worker_components:
            try:
                root = psutil.Process(self.airflow.processes[worker].pid)
                tree = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            sizes, shares = [], []
            for process in tree:
                with contextlib.suppress(psutil.NoSuchProcess):
                    memory = process.memory_full_info()
                    sizes.append(memory.rss / 2**20)
                    shares.append(memory.pss / 2**20)
            peak = self.peaks.setdefault(
                worker, {"tree_mb": 0.0, "tree_pss_mb": 0.0, "largest_process_mb": 0.0}
            )
            peak["tree_mb"] = max(peak["tree_mb"], sum(sizes))
            peak["tree_pss_mb"] = max(peak["tree_pss_mb"], sum(shares))
            peak["largest_process_mb"] = max(peak["largest_process_mb"], max(sizes, default=0.0))

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()

    def __enter__(self) -> TreeRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _seconds(start: str, end: str) -> float:
    return (dt.datetime.fromisoformat(end) - dt.datetime.fromisoformat(start)).total_seconds()


def score_day(airflow: CeleryAirflow, api: AirflowApi, rows: int, version: int) -> dict[str, Any]:
    """Trigger one churn_score run of DAY with `version`, wait for it, sampling the workers' memory;
    its figures."""
    with TreeRss(airflow) as rss:
        run_id = trigger_run(api, "churn_score", {"ds": DAY.isoformat(), "model_version": version})
        states = wait_for_runs(api, "churn_score", [run_id], timeout=3600)
    if states[run_id] != "success":
        raise RuntimeError(f"churn_score {run_id} ended {states[run_id]}; see {airflow.log_dir}")
    run = api.get(f"/dags/churn_score/dagRuns/{run_id}")
    instances = api.get(f"/dags/churn_score/dagRuns/{run_id}/taskInstances?limit=1000")["task_instances"]
    shards = [ti for ti in instances if ti["task_id"] == "score_shard"]
    [publish] = [ti for ti in instances if ti["task_id"] == "publish"]
    wall = _seconds(run["start_date"], run["end_date"])
    by_worker: dict[str, int] = {}
    for ti in shards:
        by_worker[ti["hostname"]] = by_worker.get(ti["hostname"], 0) + 1
    results = shard_results(api, run_id, shards)
    # A task's start-up: its duration (Airflow's, from its process's start to its end) less the
    # seconds its stage spent on rows (its result's `work_s`), as a share of the duration.
    startup = sorted(
        (ti["duration"] - r["work_s"]) / ti["duration"] for ti, r in zip(shards, results, strict=True)
    )
    first_shard = min(ti["start_date"] for ti in shards)
    [plan] = [ti for ti in instances if ti["task_id"] == "plan"]
    return {
        "workers": airflow.layout.workers,
        "shards": len(shards),
        "wall_s": wall,
        "rows_per_s": rows / wall,
        # Like for like with one process's shard + publish: from the first shard's start to the publish's end.
        "scoring_s": _seconds(first_shard, publish["end_date"]),
        "shards_phase_s": _seconds(first_shard, max(ti["end_date"] for ti in shards)),
        "shard_s": sorted(round(ti["duration"], 2) for ti in shards),
        "shard_work_s": sorted(r["work_s"] for r in results),
        "shard_startup_s": sorted(r["startup_s"] for r in results),
        # The cores a shard's own process kept busy while it scored (PostgreSQL's COPY backend aside).
        "shard_cores": sorted(round(r["cpu_s"] / r["work_s"], 2) for r in results),
        # When each shard was queued and started, and the publish started, after the plan ended.
        "shard_queued_started_s": sorted(
            (
                round(_seconds(plan["end_date"], ti["queued_when"]), 2),
                round(_seconds(plan["end_date"], ti["start_date"]), 2),
            )
            for ti in shards
        ),
        "publish_started_s": round(_seconds(plan["end_date"], publish["start_date"]), 2),
        "startup_share": startup,
        "publish_s": publish["duration"],
        "shards_by_worker": by_worker,
        "peak_rss_mb": rss.peaks,
        "shard_task_peak_rss_mb": sorted(r["peak_rss_mb"] for r in results),
    }


def shard_results(api: AirflowApi, run_id: str, shards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each shard task's result (XCom): its counts, its costs and its own peak RSS (VmHWM)."""
    results = []
    for ti in shards:
        entry = api.get(
            f"/dags/churn_score/dagRuns/{run_id}/taskInstances/score_shard/xcomEntries/return_value"
            f"?map_index={ti['map_index']}&deserialize=true"
        )
        value = entry["value"]
        results.append(json.loads(value) if isinstance(value, str) else value)
    return results


def check_day(platform: sa.Engine, rows: int) -> None:
    """Raise unless DAY holds one prediction per row and its run record reconciles."""
    from include.platform.tables import predictions, score_runs

    with platform.connect() as conn:
        where = (predictions.c.use_case == "churn") & (predictions.c.ds == DAY)
        count, distinct = conn.execute(
            sa.select(sa.func.count(), sa.func.count(sa.distinct(predictions.c.entity_id))).where(where)
        ).one()
        record = conn.execute(sa.select(score_runs).where(score_runs.c.ds == DAY)).mappings().one()
    if not (
        count == distinct == rows == record["rows_in"] == record["rows_scored"] + record["rows_rejected"]
    ):
        raise RuntimeError(
            f"DAY: {count} predictions ({distinct} entities) for {rows} rows; record {dict(record)}"
        )


@contextlib.contextmanager
def databases(admin_url: str) -> Iterator[tuple[str, str]]:
    """Two fresh PostgreSQL databases (Airflow's, the platform's), dropped on the way out."""
    names = tuple(f"bench_{part}_{uuid.uuid4().hex[:8]}" for part in ("airflow", "platform"))
    try:
        yield names
    finally:
        admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for name in names:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def celery_bench(bench: Bench, worker_counts: Sequence[int], admin_url: str) -> dict[str, Any]:
    """The bench's day scored on each worker count in turn; the figures by worker count."""
    import redis

    spec, rows = get_spec("churn"), bench.rows
    redis.Redis.from_url(BROKER_URL).flushdb()
    results: dict[str, Any] = {"rows": rows, "day": DAY.isoformat()}
    with (
        databases(admin_url) as (metadata_db, platform_db),
        tempfile.TemporaryDirectory(prefix="celery-") as tmp,
    ):
        home = Path(tmp)

        def layout(workers: int) -> CeleryLayout:
            return CeleryLayout(
                home=home,
                postgres_url=admin_url,
                metadata_db=metadata_db,
                platform_db=platform_db,
                broker_url=BROKER_URL,
                workers=workers,
            )

        inherited = {k: v for k, v in os.environ.items() if not k.startswith("PLATFORM_")}
        check_services(layout(1))
        prepare(layout(1), stack_env(layout(1), inherited))
        platform = sa.create_engine(layout(1).database_url(platform_db))
        lake = LocalStore(home / "lake")
        results["row_groups"] = put_day(lake, platform, spec, bench.lake.root / bench.partition_key)
        version = register_bench_model(lake, platform, spec, bench)
        for workers in worker_counts:
            airflow = CeleryAirflow(layout(workers), stack_env(layout(workers), inherited))
            try:
                airflow.start(timeout=300)
                api = AirflowApi(airflow.url, USER, airflow.layout.password)
                wait_for_dag(api, "churn_score")
                api.patch("/dags/churn_score", {"is_paused": False})
                figures = score_day(airflow, api, rows, version)
            finally:
                airflow.stop()
            check_day(platform, rows)
            log.info("%d worker(s): %.1f s, %.0f rows/s", workers, figures["wall_s"], figures["rows_per_s"])
            results[f"workers_{workers}"] = figures
        platform.dispose()
    if {"workers_1", "workers_2"} <= set(results):
        results["speedup_2_vs_1"] = results["workers_1"]["scoring_s"] / results["workers_2"]["scoring_s"]
    return results


def table(results: dict[str, Any], one_process_s: float) -> str:
    """The figures as a text table, each worker count's scoring beside one process's (`one_process_s`)."""
    lines = [
        f"sharded_scoring on Celery, {results['rows']:,} rows ({results['row_groups']} row groups)"
        f"{'wall s':>9}{'scoring s':>10}{'x 1 proc':>9}{'shards s':>9}{'publish s':>10}{'start-up':>9}"
        f"{'peak MB per worker: RSS sum / PSS sum / largest':>49}{'shard task RSS MB':>18}"
    ]
    for key, figures in results.items():
        if not key.startswith("workers_"):
            continue
        peaks = " ".join(
            f"{p['tree_mb']:,.0f}/{p['tree_pss_mb']:,.0f}/{p['largest_process_mb']:,.0f}"
            for _, p in sorted(figures["peak_rss_mb"].items())
        )
        label = f"  {figures['shards']} shard(s) on {figures['workers']} worker(s)"
        lines.append(
            f"{label:<58}{figures['wall_s']:>9.1f}{figures['scoring_s']:>10.1f}"
            f"{figures['scoring_s'] / one_process_s:>9.2f}{figures['shards_phase_s']:>9.1f}"
            f"{figures['publish_s']:>10.1f}{max(figures['startup_share']):>9.0%}{peaks:>49}"
            f"{max(figures['shard_task_peak_rss_mb']):>18,.0f}"
        )
    lines.append(
        f"  scoring: the first shard's start to the publish's end (one process, 1 shard + publish: "
        f"{one_process_s:.1f} s); start-up: the largest share of a shard task's time not spent on its rows"
    )
    for key, figures in results.items():
        if key.startswith("workers_"):
            cores = ", ".join(f"{c:.2f}" for c in figures["shard_cores"])
            lines.append(f"  {figures['workers']} worker(s): cores a shard task's process kept busy: {cores}")
    if "speedup_2_vs_1" in results:
        lines.append(
            f"  2 workers vs 1: {results['speedup_2_vs_1']:.2f}x (scoring), "
            f"{results['workers_1']['wall_s'] / results['workers_2']['wall_s']:.2f}x (the DAG run's wall)"
        )
    return "\n".join(lines)
