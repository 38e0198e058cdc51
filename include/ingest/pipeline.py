"""Ingest one day: read every source, validate, join on the entity id, quarantine, write, record.

Streamed in bounded memory: each source's batches are checked as they arrive and staged on local
disk, DuckDB finds repeated ids, joins and sorts the day under a memory limit, and the partition
and the quarantine are written batch by batch in fixed-size row groups. `stage_sources` reads and
checks every row, `account` accounts for each; `ingest_partition` adds the writes, and writes a day
that may be clean before accounting for it (`write_clean_day`). Nothing is written unless the whole
day passes the structural checks.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from include.ingest.checks import reason_kind, split_reasons
from include.ingest.parquet import QUARANTINE_SCHEMA, typed_schema, write_file, write_parquet
from include.ingest.sources import read_files_day, read_sql_day
from include.ingest.stage import DayStage, NotClean, QuarantineRow
from include.ingest.validate import IngestError
from include.io.lake import QUARANTINE_ZONE, RAW_ZONE, partition_key
from include.io.memory import use_returning_pool
from include.io.stores import ObjectStore
from include.io.workdir import workdir
from include.partition import Partition
from include.platform.day_swap import replace_rows
from include.platform.tables import ingest_runs
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
) -> dict[str, Iterator[pa.RecordBatch]]:
    """Each source's rows for the day as a stream of batches, by source name.

    The structural checks (the table and its columns, files for the day) run now; rows are read
    only as the stream is consumed.
    """
    rows = spec.ingest.row_group_rows
    streams = {}
    for source in spec.sources:
        if source.kind == "sql":
            streams[source.name] = read_sql_day(engine_for(source.conn_id), source, partition, rows)
        else:
            streams[source.name] = read_files_day(store_for(source.conn_id), source, partition, rows)
    return streams


def stage_sources(partition: Partition, raw: dict[str, Iterator[pa.RecordBatch]], stage: DayStage) -> None:
    """Check and stage every source's rows.

    Raises:
        IngestError: a source with no rows.
    """
    # Every source at once: one is mostly waiting on its database while another is checked.
    with ThreadPoolExecutor(max_workers=len(raw), thread_name_prefix="ingest-source") as pool:
        staged = {name: pool.submit(stage.add_source, name, batches) for name, batches in raw.items()}
        read = {name: future.result() for name, future in staged.items()}
    for name, rows in read.items():
        if not rows:
            raise IngestError(f"source {name}, ds={partition.key}: no rows for the day")


def account(spec: UseCase, partition: Partition, stage: DayStage) -> Counts:
    """Find what joins among the staged rows and account for every row.

    Raises:
        IngestError: more bad rows than the spec allows.
    """
    sources = stage.assemble()
    counts = staged_counts(stage)
    # Sources whose own rows failed come first: the other sources lose the same ids only in the join,
    # and an error blaming the entity id there would hide the column at fault.
    for name in sorted(sources, key=lambda n: -sources[n].failed_checks):
        read, quarantined = sources[name].read, sources[name].quarantined
        if read != counts.written + quarantined:
            raise AssertionError(f"source {name}: {read} read != {counts.written} + {quarantined}")
        # Rows of no day are quarantined on every day (never lost unseen) but judged on none.
        unplaced = stage.unplaced[name]
        own_read, own_bad = read - unplaced, quarantined - unplaced
        share = own_bad / own_read if own_read else 0.0
        if share > spec.ingest.max_quarantine_fraction:
            common = ", ".join(f"{c} ({n})" for c, n in stage.top_faults(name))
            besides = f" (besides {unplaced} rows of no day)" if unplaced else ""
            raise IngestError(
                f"source {name}, ds={partition.key}: {own_bad} of {own_read} rows failed "
                f"validation{besides} ({share:.0%} > max {spec.ingest.max_quarantine_fraction:.0%}); "
                f"most common faults: {common}"
            )
    return counts


def staged_counts(stage: DayStage) -> Counts:
    """The counts of a stage that has accounted for its rows."""
    return Counts(
        read={n: c.read for n, c in stage.counts.items()},
        quarantined={n: c.quarantined for n, c in stage.counts.items()},
        joined=stage.joined,
        written=stage.joined,
    )


def write_clean_day(
    stage: DayStage, lake: ObjectStore, keys: tuple[str, str], schema: pa.Schema, ds: pa.Scalar
) -> bool:
    """Write the partition of a day that `may_be_clean` before its ids are counted; False, with
    nothing written, when the day proves not clean (`DayStage.clean_partition_batches`).

    `keys`: the partition's and the quarantine's. The day's old quarantine, if any, goes just before
    the partition lands.
    """
    data_key, quarantine_key = keys
    path = stage.workdir / "partition.parquet"
    rows = stage.spec.ingest.row_group_rows
    try:
        written = write_file(path, schema, stage.clean_partition_batches(ds, rows), rows, unique=[stage.key])
    except NotClean as exc:
        log.info("the day is not clean (%s): its ids are counted first", exc)
        path.unlink(missing_ok=True)
        return False
    lake.delete(quarantine_key)
    lake.put_file(data_key, path)
    log.info("wrote %d rows to %s", written, lake.uri(data_key))
    return True


def quarantine_batches(
    stage: DayStage, batch_rows: int, reasons: Counter | None = None
) -> Iterator[pa.RecordBatch]:
    """Every source's quarantined rows, in source order, as batches of the quarantine's schema.

    `reasons`, when given, counts the rows per (source, reason) on the way (see `reason_counts`).
    """
    for name in stage.columns:
        chunk: list[QuarantineRow] = []
        for row in stage.quarantine_rows(name):
            if reasons is not None:
                reasons.update((name, reason_kind(reason)) for reason in split_reasons(row.reasons))
            chunk.append(row)
            if len(chunk) == batch_rows:
                yield _quarantine_batch(name, chunk)
                chunk = []
        if chunk:
            yield _quarantine_batch(name, chunk)


def reason_counts(reasons: Counter, top: int = 10) -> dict[str, dict[str, int]]:
    """Per source, the `top` most common reasons with their rows (a row with two reasons counts twice)."""
    found: dict[str, dict[str, int]] = {}
    for (source, reason), n in sorted(reasons.items(), key=lambda item: (-item[1], item[0])):
        if len(found.setdefault(source, {})) < top:
            found[source][reason] = n
    return found


def _quarantine_batch(source: str, rows: list[QuarantineRow]) -> pa.RecordBatch:
    arrays = [[source] * len(rows), *zip(*rows, strict=True)]
    return pa.RecordBatch.from_arrays(
        [pa.array(a, f.type) for a, f in zip(arrays, QUARANTINE_SCHEMA, strict=True)],
        schema=QUARANTINE_SCHEMA,
    )


def ingest_partition(
    spec: UseCase,
    partition: Partition,
    *,
    raw: dict[str, Iterator[pa.RecordBatch]],
    lake: ObjectStore,
    platform: sa.Engine,
    run_id: str,
) -> IngestResult:
    """Build the day's partition from the sources' streams, replace it in the lake, record the run."""
    started = time.perf_counter()
    use_returning_pool()
    rows = spec.ingest.row_group_rows
    data_key = partition_key(RAW_ZONE, spec.name, partition.ds)
    quarantine_key = partition_key(QUARANTINE_ZONE, spec.name, partition.ds)
    with workdir(f"ingest-{spec.name}") as tmp:
        stage = DayStage(spec, list(raw), tmp, spec.ingest.memory_limit_mb)
        try:
            stage_sources(partition, raw, stage)
            ds = pa.scalar(dt.datetime.combine(partition.ds, dt.time()), pa.timestamp("us"))
            schema = typed_schema(spec.columns, {"ds": "datetime64[us]"})
            reasons: Counter = Counter()
            if stage.may_be_clean and write_clean_day(stage, lake, (data_key, quarantine_key), schema, ds):
                counts = staged_counts(stage)
            else:
                counts = account(spec, partition, stage)
                # Quarantine first: a crash before the partition lands leaves the old partition in place.
                if sum(counts.quarantined.values()):
                    batches = quarantine_batches(stage, rows, reasons)
                    write_parquet(lake, quarantine_key, QUARANTINE_SCHEMA, batches, rows)
                else:
                    lake.delete(quarantine_key)
                batches = stage.partition_batches(ds, rows)
                write_parquet(lake, data_key, schema, batches, rows, unique=[spec.entity_id])
        finally:
            stage.close()
    quarantined = sum(counts.quarantined.values())
    result = IngestResult(
        use_case=spec.name,
        ds=partition.key,
        counts=counts,
        partition_uri=lake.uri(data_key),
        quarantine_uri=lake.uri(quarantine_key) if quarantined else None,
        quarantine_reasons=reason_counts(reasons),
    )
    record_ingest_run(platform, result, run_id)
    log.info(
        "ingested %s ds=%s: read %s, quarantined %s, wrote %d rows to %s in %.2fs",
        spec.name,
        partition.key,
        counts.read,
        counts.quarantined,
        counts.written,
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
