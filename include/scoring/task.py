"""The scoring DAG's stages: wait for the partition, resolve the model, plan the shards, score
each shard, publish the day, ask for a retrain on drift.

Each takes the run's facts and the stores (`include.runs`) and returns a typed result for XCom:
`resolve_model` the version and its sha256 (`Resolved`), `plan_shards` each shard's row groups, ids
and staging key, `score_shard` its exact counts and costs (`ShardResult`), `publish` the day's
figures (`PublishedDay`). `run_scoring` runs them in one process, as the DAG does: the tests, the
tools and the bench call it or its parts, never a copy.
"""

from __future__ import annotations

import datetime as dt
import logging
import statistics
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from include.runs import RunFacts, Stores, XComResult

if TYPE_CHECKING:
    from include.registry.registry import ModelVersion
    from include.scoring.score import Shard, ShardCosts
    from include.usecases.spec import UseCase

log = logging.getLogger(__name__)

# This process's loaded model and drift reference, by (use case, version, sha256): later shards of
# the same version reuse them (one version kept: a worker's memory stays bounded).
_warm: dict[tuple[str, int, str], tuple[Any, Any]] = {}
# When this process's last shard ended: a shard's start-up is counted from it, or from the start.
_last_end: list[float] = []


class Resolved(XComResult):
    """The run's model, chosen once, and the one time its predictions are stamped with."""

    ds: dt.date
    model_version: int
    model_sha256: str
    threshold: float | None
    scored_at: dt.datetime
    spec_sha256: str


class ShardResult(XComResult):
    """What one shard counted: its `Tally` and `DriftCounter` as dicts, the PostgreSQL table it
    loaded (None on SQLite), its peak memory, and its costs: seconds from its process's start (or
    the process's previous shard) to its first row, seconds from there to its end, and the CPU
    seconds its process spent meanwhile (all its threads). No start-up (None) for a shard that is no
    task of its own (`run_scoring`)."""

    index: int
    count: int
    tally: dict[str, Any]
    drift: dict[str, Any] | None
    peak_rss_mb: float
    table: str | None = None
    startup_s: float | None = 0.0
    work_s: float = 0.0
    cpu_s: float = 0.0


class PublishedDay(XComResult):
    """The day as published: the run record's figures, the drift level and the alerting features."""

    ds: dt.date
    model_version: int
    rows_in: int
    rows_scored: int
    rows_rejected: int
    rejected_reasons: dict[str, int]
    score_mean: float | None
    positive_rate: float | None
    score_histogram: list[int]
    drift_level: str
    alerts: dict[str, float]


def partition_ready(run: RunFacts, stores: Stores) -> bool:
    """Whether the day's ingest has recorded its partition, and the lake agrees (the sensor's poke)."""
    from include.platform.queries import ingest_record

    with stores.platform.connect() as conn:
        found = ingest_record(conn, run.use_case, run.ds)
    if found is None:
        log.info(
            "%s, ds=%s: no partition yet; %s has not ingested that day",
            run.use_case,
            run.ds,
            run.spec.ingest_dag_id,
        )
        return False
    problem = record_disagreement(stores.lake, run.use_case, run.ds, found)
    if problem:
        log.warning(
            "%s, ds=%s: the ingest run record disagrees with the lake (%s); waiting for a rerun of %s",
            run.use_case,
            run.ds,
            problem,
            run.spec.ingest_dag_id,
        )
    return problem is None


def record_disagreement(lake, use_case: str, ds: dt.date, record: Any) -> str | None:
    """How the day's partition and quarantine in the lake differ from its run record, if they do.

    Args:
        lake: the lake's store.
        use_case: the use case.
        ds: the day.
        record: the run record's `rows_written`, `rows_quarantined` (per source), `partition_uri`
            and `quarantine_uri`.

    Returns:
        None when both objects hold the rows the record counts, else what differs.
    """
    from include.io.lake import QUARANTINE_ZONE, partition_key

    quarantined = sum(record.rows_quarantined.values())
    quarantine_key = partition_key(QUARANTINE_ZONE, use_case, ds)
    expected = [(lake.key_of(record.partition_uri), record.rows_written, "partition")]
    if record.quarantine_uri is None:
        if lake.list_keys(quarantine_key):
            return f"a quarantine {lake.uri(quarantine_key)} exists, the record has none"
    else:
        expected.append((lake.key_of(record.quarantine_uri), quarantined, "quarantine"))
    for key, rows, what in expected:
        found = _parquet_rows(lake, key)
        if found is None:
            return f"{what} {lake.uri(key)} is missing"
        if found != rows:
            return f"{what} {lake.uri(key)} holds {found} rows, the record says {rows}"
    return None


def _parquet_rows(lake, key: str) -> int | None:
    """The row count in a Parquet object's footer; None when there is no such object."""
    import pyarrow.parquet as pq

    if key not in lake.list_keys(key):
        return None
    with lake.local_path(key) as path:
        return pq.read_metadata(path).num_rows


def choose_version(registry, spec: UseCase, ds: dt.date, requested: int | None):
    """The version that scores `ds`: the one the run names, else the champion as of `ds`."""
    from include.scoring.score import ScoreError

    if requested is not None:
        try:
            version = registry.get(spec.name, requested)
        except LookupError:
            known = [v.version for v in registry.versions(spec.name)]
            raise ScoreError(
                f"model_version: {spec.name} has no version {requested} (registered: {known})"
            ) from None
        if version.status == "rejected":
            log.warning("%s: scoring with v%d as asked, though its gate rejected it", spec.name, requested)
        return version
    version = registry.champion_as_of(spec.name, ds)
    if version is None:
        raise ScoreError(
            f"{spec.name}: no champion as of ds={ds}: no model trained as of {ds} or earlier has passed "
            f"the gate. Train one (trigger {spec.train_dag_id} with ds on or before {ds}), or name a "
            "registered version in the run's model_version param."
        )
    return version


def resolve_model(run: RunFacts, stores: Stores) -> Resolved:
    """The run's model, chosen once: the `model_version` param, else the champion as of `ds`."""
    version = choose_version(stores.registry, run.spec, run.ds, run.params.get("model_version"))
    log.info("%s, ds=%s: scoring with v%d (sha256 %s)", run.use_case, run.ds, version.version, version.sha256)
    return Resolved(
        ds=run.ds,
        model_version=version.version,
        model_sha256=version.sha256,
        threshold=version.threshold,
        scored_at=dt.datetime.now(dt.UTC),
        spec_sha256=run.spec_sha256,
    )


def plan_shards(run: RunFacts, stores: Stores, workers: int = 1, count: int | None = None) -> list[Shard]:
    """The day's shards: contiguous ranges of the partition's row groups, from its Parquet footer
    alone, each with its range of ids and its staging key for this run; `count` of them, else as
    many as `shard_count` finds worth a task on `workers` workers, at the costs the use case's last
    scored day measured (`last_costs`)."""
    from include.io.lake import RAW_ZONE, partition_key, shard_key
    from include.scoring.score import partition_row_groups, plan_day, shard_count

    spec = run.spec
    group_rows, starts = partition_row_groups(
        stores.lake, partition_key(RAW_ZONE, spec.name, run.ds), [spec.entity_id, *spec.features.all]
    )
    costs = last_costs(stores, spec.name)
    wanted = count or shard_count(sum(group_rows), len(group_rows), workers, costs, spec.scoring.shard_rows)
    shards = plan_day(
        group_rows,
        starts,
        wanted,
        lambda index, total: shard_key(spec.name, run.ds, run.run_id, index, total),
    )
    log.info(
        "%s, ds=%s: %d rows in %d row groups -> %d shard(s) of ~%d rows (%d worker(s); a task's start-up "
        "%.1f s, %.0f rows/s; scoring.shard_rows %d)",
        spec.name,
        run.ds,
        sum(group_rows),
        len(group_rows),
        len(shards),
        sum(group_rows) // len(shards),
        workers,
        costs.startup_s,
        costs.rows_per_s,
        spec.scoring.shard_rows,
    )
    return shards


def last_costs(stores: Stores, use_case: str) -> ShardCosts:
    """What a shard cost when the use case's newest scoring run was recorded; the defaults before."""
    import sqlalchemy as sa

    from include.platform.tables import score_runs
    from include.scoring.score import ShardCosts

    query = (
        sa.select(score_runs.c.shard_costs)
        .where((score_runs.c.use_case == use_case) & score_runs.c.shard_costs.is_not(None))
        .order_by(score_runs.c.recorded_at.desc())
        .limit(1)
    )
    with stores.platform.connect() as conn:
        found = conn.execute(query).scalar()
    return ShardCosts(**found) if found else ShardCosts()


def score_queue_workers(queue: str) -> int:
    """The Celery workers consuming `queue`, as they answer now; 1 on any other executor, or when
    none answers within a second."""
    from airflow.configuration import conf

    if "CeleryExecutor" not in conf.get("core", "executor"):
        return 1
    from airflow.providers.celery.executors.celery_executor_utils import app

    answers = app.control.inspect(timeout=1.0).active_queues() or {}
    consuming = [worker for worker, queues in answers.items() if any(q["name"] == queue for q in queues)]
    log.info("Celery workers on queue %s: %s", queue, sorted(consuming) or "none answered")
    return max(1, len(consuming))


def warm_model(stores: Stores, version: ModelVersion) -> tuple[Any, Any]:
    """The version's model (sha256 checked) and drift reference (None without one), loaded once per
    process and reused by its later shards of the same version and sha256."""
    from include.monitoring.reference import Reference
    from include.registry.model_files import load_version_model

    key = (version.use_case, version.version, version.sha256)
    if key not in _warm:
        _warm.clear()
        reference = Reference.from_dict(version.reference) if version.reference else None
        _warm[key] = (load_version_model(stores.lake, version), reference)
    return _warm[key]


def _cpu_s() -> float:
    """The CPU seconds this process has spent, in every thread."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _startup_s(entered: float) -> float:
    """Seconds from this process's start, or from its previous shard's end, to `entered`."""
    import psutil

    return entered - (_last_end[-1] if _last_end else psutil.Process().create_time())


def score_shard(run: RunFacts, resolved: Resolved, shard: Shard, stores: Stores) -> ShardResult:
    """Score one shard with the run's model: stream its row groups, stage its predictions, count.

    Raises:
        SpecChanged: when the spec file is not the one the run resolved its model with.
        ScoreError: when the registry's sha256 of the version is not the one the run resolved.
    """
    from include.io.bulk import is_postgres
    from include.io.lake import RAW_ZONE, partition_key
    from include.io.memory import one_arrow_thread, peak_rss_mb, use_returning_pool
    from include.monitoring.counting import DriftCounter
    from include.platform.day_swap import load_shard
    from include.platform.tables import predictions
    from include.scoring.score import (
        PREDICTION_SCHEMA,
        ScoreError,
        Scorer,
        Tally,
        read_shard,
        stage_predictions,
    )

    entered, cpu = time.time(), _cpu_s()
    startup = _startup_s(entered)
    run.check_spec(resolved.spec_sha256)
    use_returning_pool()
    spec, ds, lake = run.spec, resolved.ds, stores.lake
    version = stores.registry.get(spec.name, resolved.model_version)
    if version.sha256 != resolved.model_sha256:
        raise ScoreError(
            f"{spec.name} v{version.version}: the registry's sha256 {version.sha256} is not the "
            f"{resolved.model_sha256} the run resolved"
        )
    loaded, reference = warm_model(stores, version)
    scorer = Scorer(
        spec=spec,
        model=loaded.model,
        version=version.version,
        threshold=loaded.threshold,
        ds=ds,
        scored_at=resolved.scored_at,
    )
    drift = DriftCounter(reference, spec) if reference else None
    tally = Tally()
    columns = [spec.entity_id, *spec.features.all]
    key = partition_key(RAW_ZONE, spec.name, ds)
    table: list[str] = []

    def load(batches) -> int:
        name, rows = load_shard(
            stores.platform,
            predictions,
            {"use_case": spec.name, "ds": ds},
            run.run_id,
            shard.index,
            (shard.lower, shard.upper),
            PREDICTION_SCHEMA,
            batches,
        )
        table.append(name)
        return rows

    with one_arrow_thread(), read_shard(lake, key, shard, columns, spec.scoring.batch_rows) as batches:
        predicted = scorer.predict(batches, tally, drift.add if drift else lambda *_: None)
        if is_postgres(stores.platform):
            staged = stage_predictions(lake, shard.key, predicted, load)
        else:
            staged = stage_predictions(lake, shard.key, predicted)
    if staged != tally.rows_scored:
        raise ScoreError(
            f"{spec.name}, ds={ds}: {shard.label} scored {tally.rows_scored} rows, staged {staged}"
        )
    peak, cpu = peak_rss_mb(), _cpu_s() - cpu
    _last_end[:] = [time.time()]
    log.info(
        "%s, ds=%s, %s (row groups %d-%d): %d rows in, %d scored, %d rejected %s; staged at %s%s; "
        "start-up %.1f s, scoring %.1f s (%.1f s of CPU), peak RSS %.0f MB",
        spec.name,
        ds,
        shard.label,
        shard.first_group,
        shard.end_group - 1,
        tally.rows_in,
        staged,
        tally.rows_rejected,
        dict(tally.rejected),
        lake.uri(shard.key),
        f" and in table {table[0]}" if table else "",
        startup,
        _last_end[0] - entered,
        cpu,
        peak,
    )
    return ShardResult(
        index=shard.index,
        count=shard.count,
        tally=tally.to_dict(),
        drift=drift.to_dict() if drift else None,
        peak_rss_mb=round(peak, 1),
        table=table[0] if table else None,
        startup_s=round(startup, 3),
        work_s=round(_last_end[0] - entered, 3),
        cpu_s=round(cpu, 3),
    )


def publish(
    run: RunFacts, resolved: Resolved, plan: list[Shard], results: Iterable[ShardResult], stores: Stores
) -> PublishedDay:
    """Merge the shards' counts, publish the day's predictions at once, record the run and its drift.

    The predictions replace the day's in the table in one transaction: on PostgreSQL the shards'
    tables are attached as the day (`day_swap.attach_shards`, no row moved), on SQLite the staged
    files the plan names (never a listing) are streamed in. Then the staged files become the lake's
    day, the run is recorded with what its shards cost (for the next plan), and the staging goes.

    Raises:
        SpecChanged: when the spec file is not the one the run resolved its model with.
        ScoreError: when the results are not one per planned shard with the planned rows, or when
            no row of the day could be scored (nothing is written).
    """
    from include.io.bulk import is_postgres
    from include.io.lake import RAW_ZONE, partition_key, staging_prefix
    from include.io.lineage import report_lineage, table_uri
    from include.io.memory import peak_rss_mb, use_returning_pool
    from include.monitoring.statistics import worst_level
    from include.platform.day_swap import attach_shards, replace_partition, replace_rows
    from include.platform.tables import drift_measures, predictions, score_runs
    from include.scoring.score import PREDICTION_SCHEMA, ScoreError, publish_files, read_staged

    run.check_spec(resolved.spec_sha256)
    use_returning_pool()
    spec, ds, lake, platform = run.spec, resolved.ds, stores.lake, stores.platform
    version = stores.registry.get(spec.name, resolved.model_version)
    results = list(results)
    tally, drift = _merged(spec, version, plan, results)
    if not tally.rows_scored:
        raise ScoreError(
            f"{spec.name}, ds={ds}: no row to score ({tally.rows_in} in, "
            f"rejected: {dict(tally.rejected) or 'none'})"
        )
    key = {"use_case": spec.name, "ds": ds}
    if is_postgres(platform):
        tables = {r.index: r.table for r in results}
        attach_shards(
            platform, predictions, key, run.run_id, [(tables[s.index], s.lower, s.upper) for s in plan]
        )
        written = tally.rows_scored  # each shard checked its table's rows against its count
    else:
        staged = read_staged(lake, [s.key for s in plan], spec.scoring.batch_rows)
        written = replace_partition(platform, predictions, key, PREDICTION_SCHEMA, staged)
    if written != tally.rows_scored:
        raise ScoreError(
            f"{spec.name}, ds={ds}: the shards scored {tally.rows_scored} rows, staged {written}"
        )
    uri = publish_files(lake, [s.key for s in plan], spec.name, ds)
    drifts = drift.drifts() if drift else []
    level = worst_level(drifts) if drift else "none"
    figures = tally.figures()
    with platform.begin() as conn:
        replace_rows(
            conn,
            drift_measures,
            key,
            [{**key, "model_version": resolved.model_version, **d.to_dict()} for d in drifts],
        )
        replace_rows(
            conn,
            score_runs,
            key,
            [
                {
                    **key,
                    **figures,
                    "run_id": run.run_id,
                    "model_version": resolved.model_version,
                    "model_sha256": resolved.model_sha256,
                    "threshold": resolved.threshold,
                    "drift_level": level,
                    "predictions_uri": uri,
                    "shard_costs": _costs(results),
                }
            ],
        )
    for staged in lake.list_keys(staging_prefix(spec.name, ds, run.run_id)):
        lake.delete(staged)
    report_lineage(
        read=[lake.uri(partition_key(RAW_ZONE, spec.name, ds)), version.artifact_uri],
        wrote=[table_uri(platform, predictions.name), uri],
    )
    log.info(
        "%s, ds=%s: v%d scored %d of %d rows in %d shard(s) (%d rejected %s), wrote %d to %s; drift %s; "
        "peak RSS %.0f MB",
        spec.name,
        ds,
        resolved.model_version,
        figures["rows_scored"],
        figures["rows_in"],
        len(plan),
        figures["rows_rejected"],
        figures["rejected_reasons"],
        written,
        uri,
        level,
        peak_rss_mb(),
    )
    return PublishedDay(
        ds=ds,
        model_version=resolved.model_version,
        **figures,
        drift_level=level,
        alerts={d.feature: round(d.psi, 4) for d in drifts if d.level == "alert"},
    )


def _merged(spec: UseCase, version: Any, shards: list[Shard], results: list[ShardResult]) -> tuple[Any, Any]:
    """The day's `Tally` and `DriftCounter` (None without a reference): the shards' counts added up.

    Raises:
        ScoreError: unless there is one result per planned shard, each with its shard's rows.
    """
    from include.monitoring.counting import DriftCounter
    from include.monitoring.reference import Reference
    from include.scoring.score import ScoreError, Tally

    by_index = {(r.index, r.count): r for r in results}
    planned = [(s.index, s.count) for s in shards]
    if sorted(by_index) != planned or len(results) != len(shards):
        raise ScoreError(f"{spec.name}: shard results {sorted(by_index)} are not the plan's {planned}")
    reference = Reference.from_dict(version.reference) if version.reference else None
    tally, drift = Tally(), DriftCounter(reference, spec) if reference else None
    for shard in shards:
        result = by_index[(shard.index, shard.count)]
        part = Tally.from_dict(result.tally)
        if part.rows_in != shard.rows:
            raise ScoreError(f"{spec.name}: {shard.label} read {part.rows_in} rows, planned {shard.rows}")
        tally.merge(part)
        if drift is not None:
            drift.merge(DriftCounter.from_dict(result.drift, reference, spec))
    return tally, drift


def _costs(results: list[ShardResult]) -> dict[str, float] | None:
    """What the shards cost (`ShardCosts`' fields): their median start-up and rows per second; None
    when they were no tasks of their own (their start-up measures nothing a plan could use)."""
    if any(r.startup_s is None for r in results):
        return None
    return {
        "startup_s": round(statistics.median(r.startup_s for r in results), 3),
        "rows_per_s": round(statistics.median(r.tally["rows_in"] / max(r.work_s, 1e-3) for r in results), 1),
    }


def run_scoring(run: RunFacts, stores: Stores, count: int | None = None) -> PublishedDay:
    """The whole day in this process, as the DAG runs it: resolve, plan (`count` shards, else as
    planned for one worker), every shard in turn, publish. Its shards are no tasks: it records no
    shard costs, and the next plan keeps the last ones tasks measured."""
    resolved = resolve_model(run, stores)
    plan = plan_shards(run, stores, count=count)
    results = [
        score_shard(run, resolved, shard, stores).model_copy(update={"startup_s": None}) for shard in plan
    ]
    return publish(run, resolved, plan, results, stores)


def _persisting(conn: Any, spec: UseCase, ds: dt.date) -> frozenset[str]:
    """The features whose alert has lasted `drift.alert_days` scored days, `ds` among them."""
    from include.monitoring.policy import persisting_alerts
    from include.platform.queries import alerts_by_day

    reach = dt.timedelta(days=spec.drift.alert_days - 1)
    return persisting_alerts(
        alerts_by_day(conn, spec.name, ds - reach, ds + reach), ds, spec.drift.alert_days
    )


def retrain_due(run: RunFacts, scored: PublishedDay, stores: Stores) -> bool:
    """Whether the day's drift should schedule a retrain: an alert that persists, past the cooldown."""
    from include.monitoring.policy import should_retrain
    from include.platform.queries import last_retrain_request

    spec, ds = run.spec, scored.ds
    with stores.platform.connect() as conn:
        last, persisting = last_retrain_request(conn, spec.name), _persisting(conn, spec, ds)
    due = should_retrain(persisting, ds, last, spec.drift.cooldown_days)
    log.info(
        "%s, ds=%s: drift %s, alerting %d days running: %s; last retrain request %s, cooldown %d days: %s",
        spec.name,
        ds,
        scored.drift_level,
        spec.drift.alert_days,
        sorted(persisting) or "none",
        last,
        spec.drift.cooldown_days,
        "retrain" if due else "no retrain",
    )
    return due


class RetrainBlocked(Exception):
    """Another day's request, recorded since `retrain_due` looked, holds this one back (cooldown)."""


def request_retrain(run: RunFacts, scored: PublishedDay, stores: Stores) -> dict[str, Any]:
    """Record the request; returns the retrain asset event's extra: the day and its persisting features.

    The cooldown is checked again in the transaction that records the request, one writer per use
    case at a time, so days scored at once (a backfill) cannot both ask.

    Raises:
        RetrainBlocked: when a request recorded meanwhile puts this day inside the cooldown.
    """
    from include.io.bulk import is_postgres
    from include.monitoring.policy import should_retrain
    from include.platform.day_swap import partition_lock, replace_rows
    from include.platform.queries import last_retrain_request
    from include.platform.tables import retrain_requests

    spec, ds, platform = run.spec, scored.ds, stores.platform
    key = {"use_case": spec.name, "ds": ds}
    with platform.begin() as conn:
        if is_postgres(platform):
            conn.execute(partition_lock(retrain_requests, {"use_case": spec.name}))
        persisting = _persisting(conn, spec, ds)
        features = {name: psi for name, psi in scored.alerts.items() if name in persisting}
        # Writing first takes SQLite's write lock too, so the check below sees every other request.
        replace_rows(conn, retrain_requests, key, [{**key, "run_id": run.run_id, "features": features}])
        last = last_retrain_request(conn, spec.name, besides=ds)
        if not should_retrain(persisting, ds, last, spec.drift.cooldown_days):
            why = f"the request of {last} holds it (cooldown)" if persisting else "no alert persists"
            raise RetrainBlocked(f"{spec.name}, ds={ds}: {why}")
    return {"ds": ds.isoformat(), "features": features}
