"""The scoring DAG's task bodies: wait for the partition, resolve the model, plan the shards, score
each shard, publish the day, ask for a retrain on drift.

`resolve_model` and `plan_shards` return small XComs (the version and its sha256; each shard's row
groups and staging key); every `score_shard` loads exactly the resolved version (sha256 checked) and
returns its exact counts; `publish` merges them as one pass over the day would and makes the day's
predictions visible at once. `run_scoring` runs the four in one process (tests, the reliability
suite, the bench's one-task figure).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from include.config import Settings
from include.usecases.spec import UseCase, get_spec

log = logging.getLogger(__name__)


def _day(use_case: str, context: Any) -> tuple[UseCase, dt.date]:
    from include.partition import partition_from_context

    spec = get_spec(use_case, Settings.from_env().spec_dir)
    return spec, partition_from_context(context, spec.schedule.timezone).ds


def _platform() -> sa.Engine:
    from include.platform.schema import platform_engine

    return platform_engine(Settings.from_env().platform_db_conn_id)


def partition_ready(use_case: str, context: Any) -> bool:
    """Whether the day's ingest has recorded its partition, and the lake agrees (the sensor's poke)."""
    from include.io.connections import store_for
    from include.platform.tables import ingest_runs

    spec, ds = _day(use_case, context)
    with _platform().connect() as conn:
        found = conn.execute(
            sa.select(
                ingest_runs.c.rows_written,
                ingest_runs.c.rows_quarantined,
                ingest_runs.c.partition_uri,
                ingest_runs.c.quarantine_uri,
            ).where((ingest_runs.c.use_case == use_case) & (ingest_runs.c.ds == ds))
        ).first()
    if found is None:
        log.info(
            "%s, ds=%s: no partition yet; %s has not ingested that day", use_case, ds, spec.ingest_dag_id
        )
        return False
    problem = record_disagreement(store_for(Settings.from_env().lake_conn_id), use_case, ds, found)
    if problem:
        log.warning(
            "%s, ds=%s: the ingest run record disagrees with the lake (%s); waiting for a rerun of %s",
            use_case,
            ds,
            problem,
            spec.ingest_dag_id,
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


def resolve_model(use_case: str, context: Any) -> dict[str, Any]:
    """The run's model, chosen once: the `model_version` param, else the champion as of `ds`.

    Returns the XCom every shard and the publish read: the day, the version, its sha256 and
    threshold, and the one time the run's predictions are stamped with.
    """
    from include.registry.registry import Registry

    spec, ds = _day(use_case, context)
    version = choose_version(Registry(_platform()), spec, ds, context["params"].get("model_version"))
    log.info("%s, ds=%s: scoring with v%d (sha256 %s)", use_case, ds, version.version, version.sha256)
    return {
        "ds": ds.isoformat(),
        "model_version": version.version,
        "model_sha256": version.sha256,
        "threshold": version.threshold,
        "scored_at": dt.datetime.now(dt.UTC).isoformat(),
    }


def plan_shards(use_case: str, context: Any) -> list[dict[str, Any]]:
    """The day's shards: contiguous ranges of the partition's row groups, about `scoring.shard_rows`
    rows each, from the Parquet footer alone; each with its staging key for this run."""
    from include.io.connections import store_for
    from include.io.lake import RAW_ZONE, partition_key, shard_key
    from include.scoring.score import Shard, partition_row_groups, split_row_groups

    spec, ds = _day(use_case, context)
    lake = store_for(Settings.from_env().lake_conn_id)
    group_rows = partition_row_groups(
        lake, partition_key(RAW_ZONE, use_case, ds), [spec.entity_id, *spec.features.all]
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
            key=shard_key(use_case, ds, context["run_id"], index, len(ranges)),
        )
        for index, (first, end) in enumerate(ranges)
    ]
    log.info(
        "%s, ds=%s: %d rows in %d row groups -> %d shard(s) of ~%d rows (scoring.shard_rows %d)",
        use_case,
        ds,
        sum(group_rows),
        len(group_rows),
        len(shards),
        sum(group_rows) // len(shards),
        spec.scoring.shard_rows,
    )
    return [shard.to_dict() for shard in shards]


def score_shard(use_case: str, resolved: dict[str, Any], shard: dict[str, Any]) -> dict[str, Any]:
    """Score one shard with the run's model: stream its row groups, stage its predictions, count.

    Returns what it counted (the `Tally` and the `DriftCounter` as dicts), for the publish to merge.

    Raises:
        ScoreError: when the registry's sha256 of the version is not the one the run resolved.
    """
    from include.io.connections import store_for
    from include.io.lake import RAW_ZONE, partition_key
    from include.io.memory import one_arrow_thread, peak_rss_mb, use_returning_pool
    from include.monitoring.drift import DriftCounter, Reference
    from include.registry.model_files import load_version_model
    from include.registry.registry import Registry
    from include.scoring.score import ScoreError, Scorer, Shard, Tally, read_shard, stage_predictions

    use_returning_pool()
    spec = get_spec(use_case, Settings.from_env().spec_dir)
    ds, part = dt.date.fromisoformat(resolved["ds"]), Shard.from_dict(shard)
    lake = store_for(Settings.from_env().lake_conn_id)
    version = Registry(_platform()).get(use_case, resolved["model_version"])
    if version.sha256 != resolved["model_sha256"]:
        raise ScoreError(
            f"{use_case} v{version.version}: the registry's sha256 {version.sha256} is not the "
            f"{resolved['model_sha256']} the run resolved"
        )
    loaded = load_version_model(lake, version)
    scorer = Scorer(
        spec=spec,
        model=loaded.model,
        version=version.version,
        threshold=loaded.threshold,
        ds=ds,
        scored_at=dt.datetime.fromisoformat(resolved["scored_at"]),
    )
    drift = DriftCounter(Reference.from_dict(version.reference), spec) if version.reference else None
    tally = Tally()
    columns = [spec.entity_id, *spec.features.all]
    key = partition_key(RAW_ZONE, use_case, ds)
    with one_arrow_thread(), read_shard(lake, key, part, columns, spec.scoring.batch_rows) as batches:
        staged = stage_predictions(
            lake, part.key, scorer.predict(batches, tally, drift.add if drift else lambda _: None)
        )
    peak = peak_rss_mb()
    log.info(
        "%s, ds=%s, %s (row groups %d-%d): %d rows in, %d scored, %d rejected %s; staged at %s; "
        "peak RSS %.0f MB",
        use_case,
        ds,
        part.label,
        part.first_group,
        part.end_group - 1,
        tally.rows_in,
        staged,
        tally.rows_rejected,
        dict(tally.rejected),
        lake.uri(part.key),
        peak,
    )
    return {
        "index": part.index,
        "count": part.count,
        "tally": tally.to_dict(),
        "drift": drift.to_dict() if drift else None,
        "peak_rss_mb": round(peak, 1),
    }


def publish(
    use_case: str,
    resolved: dict[str, Any],
    plan: list[dict[str, Any]],
    results: Iterable[dict[str, Any]],
    context: Any,
) -> dict[str, Any]:
    """Merge the shards' counts, publish the day's predictions at once, record the run and its drift.

    The predictions replace the day's in the table in one transaction, read from the staged files
    the plan names (never a listing), and the lake's day is replaced whole; then the run's staging
    is removed. Returns what `retrain_due` and `request_retrain` read.

    Raises:
        ScoreError: when the results are not one per planned shard with the planned rows, or when
            no row of the day could be scored (nothing is written).
    """
    from include.io.connections import store_for
    from include.io.lake import staging_prefix
    from include.io.memory import peak_rss_mb, use_returning_pool
    from include.monitoring.drift import worst_level
    from include.platform.tables import drift_measures, replace_rows, score_runs
    from include.registry.registry import Registry
    from include.scoring.score import ScoreError, Shard, read_staged, write_predictions

    use_returning_pool()
    spec = get_spec(use_case, Settings.from_env().spec_dir)
    ds = dt.date.fromisoformat(resolved["ds"])
    platform, lake = _platform(), store_for(Settings.from_env().lake_conn_id)
    shards = [Shard.from_dict(shard) for shard in plan]
    version = Registry(platform).get(use_case, resolved["model_version"])
    tally, drift = _merged(spec, version, shards, list(results))
    if not tally.rows_scored:
        raise ScoreError(
            f"{use_case}, ds={ds}: no row to score ({tally.rows_in} in, "
            f"rejected: {dict(tally.rejected) or 'none'})"
        )
    written, uri = write_predictions(
        platform, lake, use_case, ds, read_staged(lake, [s.key for s in shards], spec.scoring.batch_rows)
    )
    if written != tally.rows_scored:
        raise ScoreError(f"{use_case}, ds={ds}: the shards scored {tally.rows_scored} rows, staged {written}")
    drifts = drift.drifts() if drift else []
    level = worst_level(drifts) if drift else "none"
    figures = tally.figures()
    key = {"use_case": use_case, "ds": ds}
    with platform.begin() as conn:
        replace_rows(
            conn,
            drift_measures,
            key,
            [{**key, "model_version": resolved["model_version"], **d.to_dict()} for d in drifts],
        )
        replace_rows(
            conn,
            score_runs,
            key,
            [
                {
                    **key,
                    **figures,
                    "run_id": context["run_id"],
                    "model_version": resolved["model_version"],
                    "model_sha256": resolved["model_sha256"],
                    "threshold": resolved["threshold"],
                    "drift_level": level,
                    "predictions_uri": uri,
                }
            ],
        )
    for staged in lake.list_keys(staging_prefix(use_case, ds, context["run_id"])):
        lake.delete(staged)
    log.info(
        "%s, ds=%s: v%d scored %d of %d rows in %d shard(s) (%d rejected %s), wrote %d to %s; drift %s; "
        "peak RSS %.0f MB",
        use_case,
        ds,
        resolved["model_version"],
        figures["rows_scored"],
        figures["rows_in"],
        len(shards),
        figures["rows_rejected"],
        figures["rejected_reasons"],
        written,
        uri,
        level,
        peak_rss_mb(),
    )
    alerts = {d.feature: round(d.psi, 4) for d in drifts if d.level == "alert"}
    return {
        "ds": ds.isoformat(),
        "model_version": resolved["model_version"],
        **figures,
        "drift_level": level,
        "alerts": alerts,
    }


def _merged(spec: UseCase, version: Any, shards: list, results: list[dict[str, Any]]) -> tuple[Any, Any]:
    """The day's `Tally` and `DriftCounter` (None without a reference): the shards' counts added up.

    Raises:
        ScoreError: unless there is one result per planned shard, each with its shard's rows.
    """
    from include.monitoring.drift import DriftCounter, Reference
    from include.scoring.score import ScoreError, Tally

    by_index = {(r["index"], r["count"]): r for r in results}
    planned = [(s.index, s.count) for s in shards]
    if sorted(by_index) != planned or len(results) != len(shards):
        raise ScoreError(f"{spec.name}: shard results {sorted(by_index)} are not the plan's {planned}")
    reference = Reference.from_dict(version.reference) if version.reference else None
    tally, drift = Tally(), DriftCounter(reference, spec) if reference else None
    for shard in shards:
        result = by_index[(shard.index, shard.count)]
        part = Tally.from_dict(result["tally"])
        if part.rows_in != shard.rows:
            raise ScoreError(f"{spec.name}: {shard.label} read {part.rows_in} rows, planned {shard.rows}")
        tally.merge(part)
        if drift is not None:
            drift.merge(DriftCounter.from_dict(result["drift"], reference, spec))
    return tally, drift


def run_scoring(use_case: str, context: Any) -> dict[str, Any]:
    """The whole day in this process, as the DAG runs it: resolve, plan, every shard in turn, publish."""
    resolved = resolve_model(use_case, context)
    plan = plan_shards(use_case, context)
    results = [score_shard(use_case, resolved, shard) for shard in plan]
    return publish(use_case, resolved, plan, results, context)


def _persisting(conn: sa.Connection, spec: UseCase, ds: dt.date) -> frozenset[str]:
    """The features whose alert has lasted `drift.alert_days` scored days, `ds` among them."""
    from include.monitoring.drift import persisting_alerts
    from include.platform.queries import alerts_by_day

    reach = dt.timedelta(days=spec.drift.alert_days - 1)
    return persisting_alerts(
        alerts_by_day(conn, spec.name, ds - reach, ds + reach), ds, spec.drift.alert_days
    )


def _last_request(conn: sa.Connection, use_case: str, besides: dt.date | None = None) -> dt.date | None:
    """The day of the use case's latest retrain request (other than `besides`'s)."""
    from include.platform.tables import retrain_requests

    which = retrain_requests.c.use_case == use_case
    if besides is not None:
        which &= retrain_requests.c.ds != besides
    return conn.execute(sa.select(sa.func.max(retrain_requests.c.ds)).where(which)).scalar()


def retrain_due(use_case: str, scored: dict[str, Any]) -> bool:
    """Whether the day's drift should schedule a retrain: an alert that persists, past the cooldown."""
    from include.monitoring.drift import should_retrain

    spec = get_spec(use_case, Settings.from_env().spec_dir)
    ds = dt.date.fromisoformat(scored["ds"])
    with _platform().connect() as conn:
        last, persisting = _last_request(conn, use_case), _persisting(conn, spec, ds)
    due = should_retrain(persisting, ds, last, spec.drift.cooldown_days)
    log.info(
        "%s, ds=%s: drift %s, alerting %d days running: %s; last retrain request %s, cooldown %d days: %s",
        use_case,
        ds,
        scored["drift_level"],
        spec.drift.alert_days,
        sorted(persisting) or "none",
        last,
        spec.drift.cooldown_days,
        "retrain" if due else "no retrain",
    )
    return due


class RetrainBlocked(Exception):
    """Another day's request, recorded since `retrain_due` looked, holds this one back (cooldown)."""


def request_retrain(use_case: str, scored: dict[str, Any], context: Any) -> dict[str, Any]:
    """Record the request and tag the retrain asset's event with the day and its persisting features.

    The cooldown is checked again in the transaction that records the request, one writer per use
    case at a time, so days scored at once (a backfill) cannot both ask.

    Raises:
        RetrainBlocked: when a request recorded meanwhile puts this day inside the cooldown.
    """
    from include.assets import retrain_asset
    from include.io.bulk import is_postgres
    from include.monitoring.drift import should_retrain
    from include.platform.tables import partition_lock, replace_rows, retrain_requests

    spec = get_spec(use_case, Settings.from_env().spec_dir)
    ds = dt.date.fromisoformat(scored["ds"])
    key = {"use_case": use_case, "ds": ds}
    platform = _platform()
    with platform.begin() as conn:
        if is_postgres(platform):
            conn.execute(partition_lock(retrain_requests, {"use_case": use_case}))
        persisting = _persisting(conn, spec, ds)
        features = {name: psi for name, psi in scored["alerts"].items() if name in persisting}
        # Writing first takes SQLite's write lock too, so the check below sees every other request.
        replace_rows(
            conn, retrain_requests, key, [{**key, "run_id": context["run_id"], "features": features}]
        )
        last = _last_request(conn, use_case, besides=ds)
        if not should_retrain(persisting, ds, last, spec.drift.cooldown_days):
            why = f"the request of {last} holds it (cooldown)" if persisting else "no alert persists"
            raise RetrainBlocked(f"{use_case}, ds={ds}: {why}")
    extra = {"ds": scored["ds"], "features": features}
    context["outlet_events"][retrain_asset(use_case)].extra = extra
    return extra
