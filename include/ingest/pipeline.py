"""Ingest one day: read every source, validate, join on the entity id, quarantine, write, record.

`build_partition` is pure (frames in, frames and counts out); `ingest_partition` adds the I/O.
Nothing is written unless the whole day passes the structural checks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import reduce

import pandas as pd
import sqlalchemy as sa

from include.ingest.sources import read_files_day, read_sql_day
from include.ingest.validate import IngestError, quarantine_frame, validate_rows
from include.io.lake import QUARANTINE_ZONE, RAW_ZONE, partition_key, write_frame
from include.io.stores import ObjectStore
from include.partition import Partition
from include.platform.tables import ingest_runs, replace_rows
from include.usecases.spec import UseCase

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Counts:
    """Row counts that reconcile per source: read = written + quarantined."""

    read: dict[str, int]
    quarantined: dict[str, int]
    joined: int
    written: int


@dataclass(frozen=True)
class BuiltPartition:
    frame: pd.DataFrame
    quarantine: pd.DataFrame
    counts: Counts


@dataclass(frozen=True)
class IngestResult:
    """What one ingest run did; small enough for XCom and the run record."""

    use_case: str
    ds: str
    counts: Counts
    partition_uri: str
    quarantine_uri: str | None
    quarantine_reasons: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def read_sources(
    spec: UseCase,
    partition: Partition,
    engine_for: Callable[[str], sa.Engine],
    store_for: Callable[[str], ObjectStore],
) -> dict[str, pd.DataFrame]:
    """Each source's raw rows for the day, by source name."""
    frames = {}
    for source in spec.sources:
        if source.kind == "sql":
            frames[source.name] = read_sql_day(engine_for(source.conn_id), source, partition)
        else:
            frames[source.name] = read_files_day(store_for(source.conn_id), source, partition)
    return frames


def build_partition(spec: UseCase, partition: Partition, raw: dict[str, pd.DataFrame]) -> BuiltPartition:
    """Validate each source, join the valid rows on the entity id, and account for every row."""
    key = spec.entity_id
    valid, quarantined, failed_checks = {}, {}, {}
    for name, frame in raw.items():
        if frame.empty:
            raise IngestError(f"source {name}, ds={partition.key}: no rows for the day")
        checked = validate_rows(frame, {c: spec.columns[c] for c in frame.columns}, key, name)
        valid[name], quarantined[name] = checked.valid, [checked.quarantined]
        failed_checks[name] = len(checked.quarantined)
    joined = reduce(lambda left, right: left.merge(right, on=key, how="inner"), valid.values())
    # Each valid frame's ids are unique (validated), so the joined ones are too: a hash lookup, where
    # `isin` on text builds a Python object per id it is given (seconds per million).
    matched = pd.Index(joined[key])
    for name, frame in valid.items():
        unmatched = frame[matched.get_indexer(frame[key]) < 0]
        others = ", ".join(n for n in valid if n != name)
        reason = [[f"{key}: no valid row in {others} for this id"]] * len(unmatched)
        quarantined[name].append(quarantine_frame(unmatched, name, key, reason))
    quarantine = pd.concat([q for parts in quarantined.values() for q in parts], ignore_index=True)
    counts = Counts(
        read={n: len(f) for n, f in raw.items()},
        quarantined={n: int((quarantine["source"] == n).sum()) for n in raw},
        joined=len(joined),
        written=len(joined),
    )
    _check_counts(spec, partition, counts, quarantine, failed_checks)
    frame = joined[[c for c in spec.columns]].assign(ds=pd.Timestamp(partition.ds).as_unit("us"))
    return BuiltPartition(frame.sort_values(key, ignore_index=True), quarantine, counts)


def reason_counts(quarantine: pd.DataFrame, top: int = 10) -> dict[str, dict[str, int]]:
    """Per source, the quarantined rows per reason (`column: problem`, the value left out), most first.

    A row with several reasons counts once for each; the `top` most common reasons per source are kept.
    """
    if quarantine.empty:
        return {}
    reasons = quarantine.assign(reason=quarantine["reasons"].str.split("; ")).explode("reason")
    # "MonthlyCharges: not a number: 'lots'" -> "MonthlyCharges: not a number"
    reasons["reason"] = reasons["reason"].str.split(": ").str[:2].str.join(": ")
    counts = reasons.groupby(["source", "reason"]).size().sort_values(ascending=False, kind="stable")
    found: dict[str, dict[str, int]] = {}
    for (source, reason), n in counts.items():
        if len(found.setdefault(source, {})) < top:
            found[source][reason] = int(n)
    return found


def _check_counts(
    spec: UseCase,
    partition: Partition,
    counts: Counts,
    quarantine: pd.DataFrame,
    failed_checks: dict[str, int],
) -> None:
    # Sources whose own rows failed come first: the other sources lose the same ids only in the join,
    # and an error blaming the entity id there would hide the column at fault.
    for name in sorted(counts.read, key=lambda n: -failed_checks[n]):
        read = counts.read[name]
        if read != counts.written + counts.quarantined[name]:
            raise AssertionError(
                f"source {name}: {read} read != {counts.written} + {counts.quarantined[name]}"
            )
        share = counts.quarantined[name] / read
        if share > spec.ingest.max_quarantine_fraction:
            top = quarantine.loc[quarantine["source"] == name, "reasons"].str.split(": ").str[0]
            common = ", ".join(f"{c} ({n})" for c, n in top.value_counts().head(3).items())
            raise IngestError(
                f"source {name}, ds={partition.key}: {counts.quarantined[name]} of {read} rows failed "
                f"validation ({share:.0%} > max {spec.ingest.max_quarantine_fraction:.0%}); "
                f"columns most at fault: {common}"
            )


def ingest_partition(
    spec: UseCase,
    partition: Partition,
    *,
    raw: dict[str, pd.DataFrame],
    lake: ObjectStore,
    platform: sa.Engine,
    run_id: str,
) -> IngestResult:
    """Build the day's partition from the sources' rows, replace it in the lake, record the run."""
    started = time.perf_counter()
    built = build_partition(spec, partition, raw)
    data_key = partition_key(RAW_ZONE, spec.name, partition.ds)
    quarantine_key = partition_key(QUARANTINE_ZONE, spec.name, partition.ds)
    # Quarantine first: a crash before the partition lands leaves the old partition in place.
    if built.quarantine.empty:
        lake.delete(quarantine_key)
    else:
        write_frame(lake, quarantine_key, built.quarantine)
    write_frame(lake, data_key, built.frame)
    result = IngestResult(
        use_case=spec.name,
        ds=partition.key,
        counts=built.counts,
        partition_uri=lake.uri(data_key),
        quarantine_uri=None if built.quarantine.empty else lake.uri(quarantine_key),
        quarantine_reasons=reason_counts(built.quarantine),
    )
    record_ingest_run(platform, result, run_id)
    log.info(
        "ingested %s ds=%s: read %s, quarantined %s, wrote %d rows to %s in %.2fs",
        spec.name,
        partition.key,
        built.counts.read,
        built.counts.quarantined,
        built.counts.written,
        result.partition_uri,
        time.perf_counter() - started,
    )
    return result


def record_ingest_run(engine: sa.Engine, result: IngestResult, run_id: str) -> None:
    """Replace the day's run record in one transaction."""
    row = {
        "use_case": result.use_case,
        "ds": pd.Timestamp(result.ds).date(),
        "run_id": run_id,
        "rows_read": result.counts.read,
        "rows_quarantined": result.counts.quarantined,
        "rows_joined": result.counts.joined,
        "rows_written": result.counts.written,
        "partition_uri": result.partition_uri,
        "quarantine_uri": result.quarantine_uri,
        "quarantine_reasons": result.quarantine_reasons,
    }
    with engine.begin() as conn:
        replace_rows(conn, ingest_runs, {"use_case": result.use_case, "ds": row["ds"]}, [row])
