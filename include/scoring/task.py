"""The scoring DAG's stages: wait for the partition, resolve the model, plan the shards, score
each shard, publish the day, ask for a retrain on drift.

Each takes the run's facts and the stores (`include.runs`) and returns a typed result for XCom:
`resolve_model` the version and its sha256 (`Resolved`), `plan_shards` each shard's row groups and
staging key, `score_shard` its exact counts (`ShardResult`), `publish` the day's figures
(`PublishedDay`). `run_scoring` runs them in one process, as the DAG does: the tests, the tools and
the bench call it or its parts, never a copy.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from include.runs import RunFacts, Stores, XComResult

if TYPE_CHECKING:
    from include.scoring.score import Shard
    from include.usecases.spec import UseCase

log = logging.getLogger(__name__)


class Resolved(XComResult):
    """The run's model, chosen once, and the one time its predictions are stamped with."""

    ds: dt.date
    model_version: int
    model_sha256: str
    threshold: float | None
    scored_at: dt.datetime
    spec_sha256: str


class ShardResult(XComResult):
    """What one shard counted: its `Tally` and `DriftCounter` as dicts, and its peak memory."""

    index: int
    count: int
    tally: dict[str, Any]
    drift: dict[str, Any] | None
    peak_rss_mb: float


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


def plan_shards(run: RunFacts, stores: Stores) -> list[Shard]:
    """The day's shards: contiguous ranges of the partition's row groups, about `scoring.shard_rows`
    rows each, from the Parquet footer alone; each with its staging key for this run."""
    from include.io.lake import RAW_ZONE, partition_key, shard_key
    from include.scoring.score import Shard, partition_row_groups, split_row_groups

    spec = run.spec
    group_rows = partition_row_groups(
        stores.lake, partition_key(RAW_ZONE, spec.name, run.ds), [spec.entity_id, *spec.features.all]
    )
    ranges = split_row_groups(group_rows, spec.scoring.shard_rows)
    shards = [
        Shard(
            index=index,
            count=len(ranges),
            first_group=first,
            end_group=end,
            rows=sum(group_rows[first:end]),
            partition_rows=sum(group_rows),
            key=shard_key(spec.name, run.ds, run.run_id, index, len(ranges)),
        )
        for index, (first, end) in enumerate(ranges)
    ]
    log.info(
        "%s, ds=%s: %d rows in %d row groups -> %d shard(s) of ~%d rows (scoring.shard_rows %d)",
        spec.name,
        run.ds,
        sum(group_rows),
        len(group_rows),
        len(shards),
        sum(group_rows) // len(shards),
        spec.scoring.shard_rows,
    )
    return shards


def score_shard(run: RunFacts, resolved: Resolved, shard: Shard, stores: Stores) -> ShardResult:
    """Score one shard with the run's model: stream its row groups, stage its predictions, count.

    Raises:
        SpecChanged: when the spec file is not the one the run resolved its model with.
        ScoreError: when the registry's sha256 of the version is not the one the run resolved.
    """
    from include.io.lake import RAW_ZONE, partition_key
    from include.io.memory import one_arrow_thread, peak_rss_mb, use_returning_pool
    from include.monitoring.counting import DriftCounter
    from include.monitoring.reference import Reference
    from include.registry.model_files import load_version_model
    from include.scoring.score import ScoreError, Scorer, Tally, read_shard, stage_predictions

    run.check_spec(resolved.spec_sha256)
    use_returning_pool()
    spec, ds, lake = run.spec, resolved.ds, stores.lake
    version = stores.registry.get(spec.name, resolved.model_version)
    if version.sha256 != resolved.model_sha256:
        raise ScoreError(
            f"{spec.name} v{version.version}: the registry's sha256 {version.sha256} is not the "
            f"{resolved.model_sha256} the run resolved"
        )
    loaded = load_version_model(lake, version)
    scorer = Scorer(
        spec=spec,
        model=loaded.model,
        version=version.version,
        threshold=loaded.threshold,
        ds=ds,
        scored_at=resolved.scored_at,
    )
    drift = DriftCounter(Reference.from_dict(version.reference), spec) if version.reference else None
    tally = Tally()
    columns = [spec.entity_id, *spec.features.all]
    key = partition_key(RAW_ZONE, spec.name, ds)
    with one_arrow_thread(), read_shard(lake, key, shard, columns, spec.scoring.batch_rows) as batches:
        staged = stage_predictions(
            lake, shard.key, scorer.predict(batches, tally, drift.add if drift else lambda *_: None)
        )
    peak = peak_rss_mb()
    log.info(
        "%s, ds=%s, %s (row groups %d-%d): %d rows in, %d scored, %d rejected %s; staged at %s; "
        "peak RSS %.0f MB",
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
        peak,
    )
    return ShardResult(
        index=shard.index,
        count=shard.count,
        tally=tally.to_dict(),
        drift=drift.to_dict() if drift else None,
        peak_rss_mb=round(peak, 1),
    )


def publish(
    run: RunFacts, resolved: Resolved, plan: list[Shard], results: Iterable[ShardResult], stores: Stores
) -> PublishedDay:
    """Merge the shards' counts, publish the day's predictions at once, record the run and its drift.

    The predictions replace the day's in the table in one transaction, read from the staged files
    the plan names (never a listing), and the lake's day is replaced whole; then the run's staging
    is removed.

    Raises:
        SpecChanged: when the spec file is not the one the run resolved its model with.
        ScoreError: when the results are not one per planned shard with the planned rows, or when
            no row of the day could be scored (nothing is written).
    """
    from include.io.lake import RAW_ZONE, partition_key, staging_prefix
    from include.io.lineage import report_lineage, table_uri
    from include.io.memory import peak_rss_mb, use_returning_pool
    from include.monitoring.statistics import worst_level
    from include.platform.day_swap import replace_rows
    from include.platform.tables import drift_measures, predictions, score_runs
    from include.scoring.score import ScoreError, read_staged, write_predictions

    run.check_spec(resolved.spec_sha256)
    use_returning_pool()
    spec, ds, lake, platform = run.spec, resolved.ds, stores.lake, stores.platform
    version = stores.registry.get(spec.name, resolved.model_version)
    tally, drift = _merged(spec, version, plan, list(results))
    if not tally.rows_scored:
        raise ScoreError(
            f"{spec.name}, ds={ds}: no row to score ({tally.rows_in} in, "
            f"rejected: {dict(tally.rejected) or 'none'})"
        )
    written, uri = write_predictions(
        platform, lake, spec.name, ds, read_staged(lake, [s.key for s in plan], spec.scoring.batch_rows)
    )
    if written != tally.rows_scored:
        raise ScoreError(
            f"{spec.name}, ds={ds}: the shards scored {tally.rows_scored} rows, staged {written}"
        )
    drifts = drift.drifts() if drift else []
    level = worst_level(drifts) if drift else "none"
    figures = tally.figures()
    key = {"use_case": spec.name, "ds": ds}
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


def run_scoring(run: RunFacts, stores: Stores) -> PublishedDay:
    """The whole day in this process, as the DAG runs it: resolve, plan, every shard in turn, publish."""
    resolved = resolve_model(run, stores)
    plan = plan_shards(run, stores)
    results = [score_shard(run, resolved, shard, stores) for shard in plan]
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
