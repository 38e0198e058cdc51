"""Replace a day of a platform table atomically: the one place that knows how.

Readers see the old day until the commit and the new one after it; two writers of one day take
turns on `partition_lock`. Small records (run records, decisions, drift) go through `replace_rows`
inside the caller's transaction; a day's predictions through `replace_partition`, the bulk path:
on PostgreSQL a table partitioned by day (`predictions`) has the day's partition swapped for a
freshly loaded table instead of deleting its rows (docs/performance.md: faster at 1 M and 5 M
rows), any other table gets DELETE + COPY; SQLite gets DELETE + `executemany` in one transaction.

A day scored in shards on PostgreSQL is published without moving a row: each shard loads its rows
into a table of its own, indexed, holding one range of the day's ids (`load_shard`, in parallel on
the workers), and the publish makes them the partitions of a new day partition and swaps that in,
in one transaction (`attach_shards`): the day is replaced whole, in milliseconds, whatever its rows.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.schema import CreateTable

from include.io.bulk import adbc_connection, is_postgres, literal_sql, sqlite_rows
from include.platform.tables import predictions

# Between a partitioned table's name and its partition's: `predictions__churn__20250331`.
PARTITION_MARK = "__"
PARTITIONED = (predictions.name,)


def partition_filter(table: sa.Table, key: dict[str, Any]) -> sa.ColumnElement[bool]:
    """The rows of `table` in one partition: every column of `key` equal to its value."""
    return sa.and_(*(table.c[name] == value for name, value in key.items()))


def day_partition(table: sa.Table, key: dict[str, Any]) -> tuple[str, str]:
    """PostgreSQL: the name of the partition of `table` holding one use case's day, and its bounds.

    The name is part of the table's layout (migration 0016 names the partitions it makes with it):
    `predictions__churn__20250331`, with a digest for a use case too long for an identifier.
    """
    use_case, ds = key["use_case"], key["ds"]
    part = use_case if len(use_case) <= 30 else hashlib.sha256(use_case.encode()).hexdigest()[:16]
    bounds = (
        f"FOR VALUES FROM ('{use_case}', '{ds.isoformat()}') "
        f"TO ('{use_case}', '{(ds + dt.timedelta(days=1)).isoformat()}')"
    )
    return f"{table.name}{PARTITION_MARK}{part}{PARTITION_MARK}{ds:%Y%m%d}", bounds


def default_partition(table: sa.Table) -> str:
    """PostgreSQL: the name of the partition that takes the rows of a day with no partition of its own."""
    return f"{table.name}{PARTITION_MARK}default"


def is_partition(name: str) -> bool:
    """Whether a table name is one of the day partitions or the default partition (not in `metadata`)."""
    return any(name.startswith(f"{table}{PARTITION_MARK}") for table in PARTITIONED)


def partition_lock(table: sa.Table, key: dict[str, Any]) -> sa.Select:
    """PostgreSQL: a transaction-scoped advisory lock that two writers of one partition take turns on.

    Without it the second writer's insert fails on the primary key instead of waiting for the first.
    """
    name = "/".join([table.name, *(str(value) for value in key.values())])
    return sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(name)))


def replace_rows(conn: sa.Connection, table: sa.Table, key: dict[str, Any], rows: list[dict]) -> None:
    """Replace every row of the partition `key` with `rows`, inside the caller's transaction.

    The small-record path (run records, decisions, drift); `replace_partition` is the bulk one, with
    the same lock and delete.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(partition_lock(table, key))
    conn.execute(table.delete().where(partition_filter(table, key)))
    if rows:
        conn.execute(table.insert(), rows)


def replace_partition(
    engine: sa.Engine,
    table: sa.Table,
    key: dict[str, Any],
    schema: pa.Schema,
    batches: Iterable[pa.RecordBatch],
) -> int:
    """Replace the rows of `table` matching `key` with `batches`, all in one transaction.

    Readers see the old partition until the commit and the new one after it; a crash or a kill in
    between rolls back and leaves the old partition whole. Two runs of the same partition (a
    backfill and the nightly run) take turns on `partition_lock`. On PostgreSQL a table partitioned
    by day is swapped (`_swap_day`), any other table gets DELETE + COPY. Returns the rows written.
    """
    delete = table.delete().where(partition_filter(table, key))
    if is_postgres(engine):
        with adbc_connection(engine) as conn:
            with conn.cursor() as cursor:
                cursor.execute(literal_sql(engine, partition_lock(table, key)))
                cursor.fetchall()
                reader = pa.RecordBatchReader.from_batches(schema, batches)
                if _is_partitioned(cursor, table):
                    rows = _swap_day(engine, cursor, table, key, reader)
                else:
                    cursor.execute(literal_sql(engine, delete))
                    rows = cursor.adbc_ingest(table.name, _in_key_order(table, key, reader), mode="append")
            conn.commit()
        return rows
    insert = f"INSERT INTO {table.name} ({', '.join(schema.names)}) VALUES ({', '.join('?' * len(schema))})"
    rows = 0
    with engine.begin() as conn:
        conn.execute(delete)
        for batch in _in_key_order(table, key, batches):
            conn.exec_driver_sql(insert, sqlite_rows(batch))
            rows += batch.num_rows
    return rows


def _in_key_order(table: sa.Table, key: dict[str, Any], batches: Iterable[pa.RecordBatch]) -> Any:
    """Each batch in primary-key order: an index takes sorted runs far faster than random keys."""
    order = [(c.name, "ascending") for c in table.primary_key.columns if c.name not in key]
    sorted_batches = (batch.sort_by(order) if order else batch for batch in batches)
    if isinstance(batches, pa.RecordBatchReader):
        return pa.RecordBatchReader.from_batches(batches.schema, sorted_batches)
    return sorted_batches


def _is_partitioned(cursor: Any, table: sa.Table) -> bool:
    cursor.execute(f"SELECT relkind = 'p' FROM pg_class WHERE oid = '{table.name}'::regclass")
    return bool(cursor.fetchone()[0])


def _condition(engine: sa.Engine, table: sa.Table, key: dict[str, Any]) -> str:
    """`key` as an SQL condition on unqualified columns, its values inlined (values the platform made)."""
    condition = sa.and_(*(sa.column(name, table.c[name].type) == value for name, value in key.items()))
    return str(condition.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))


def _swap_day(engine: sa.Engine, cursor: Any, table: sa.Table, key: dict[str, Any], reader: Any) -> int:
    """PostgreSQL, a table partitioned by (use case, day): the day loaded into a fresh table, indexed,
    then swapped in for the day's partition, inside the caller's transaction.

    No row is deleted: the old partition is dropped whole. The load and the index build happen
    before any lock on the table that readers wait for; the swap (drop, attach, rename) locks the
    table for milliseconds at the end. A CHECK constraint equal to the partition's bounds spares the
    attach its validating scan.
    """
    name, _ = day_partition(table, key)
    fresh = f"{name}{PARTITION_MARK}new"
    cursor.execute(_create(engine, fresh, table))
    rows = cursor.adbc_ingest(fresh, reader, mode="append")
    cursor.execute(f'ALTER TABLE "{fresh}" ADD PRIMARY KEY ({_primary_key(table)})')
    cursor.execute(f'ALTER TABLE "{fresh}" ADD CONSTRAINT in_day CHECK ({_condition(engine, table, key)})')
    _swap_in(engine, cursor, table, key, fresh)
    return rows


def _swap_in(engine: sa.Engine, cursor: Any, table: sa.Table, key: dict[str, Any], fresh: str) -> None:
    """PostgreSQL: the indexed table `fresh` swapped in for the day's partition of `table` (drop,
    attach, rename), inside the caller's transaction; the day's rows in the default partition go."""
    name, bounds = day_partition(table, key)
    # The table's strongest lock first: every later step needs it, so two days swapped at once
    # queue here instead of deadlocking on the partitions' locks.
    cursor.execute(f'LOCK TABLE "{table.name}" IN ACCESS EXCLUSIVE MODE')
    cursor.execute(f'DROP TABLE IF EXISTS "{name}"')
    cursor.execute(f'DELETE FROM "{default_partition(table)}" WHERE {_condition(engine, table, key)}')
    cursor.execute(f'ALTER TABLE "{table.name}" ATTACH PARTITION "{fresh}" {bounds}')
    cursor.execute(f'ALTER TABLE "{fresh}" RENAME TO "{name}"')
    cursor.execute(f'ALTER INDEX "{fresh}_pkey" RENAME TO "{name}_pkey"')


def _primary_key(table: sa.Table) -> str:
    """The primary key's columns, as an SQL list."""
    return ", ".join(c.name for c in table.primary_key.columns)


def shard_table(table: sa.Table, key: dict[str, Any], run_id: str, index: int) -> str:
    """PostgreSQL: a new name for the table one try of a run's shard `index` loads, e.g.
    `predictions__churn__20250331__3f2a9c1e__s0003_5d1c0a` (the run's digest, then the try's own
    suffix: a retry, or a rerun of the run, never drops a table that a published day is made of)."""
    return f"{_run_prefix(table, key, run_id)}s{index:04d}_{uuid.uuid4().hex[:6]}"


def _run_prefix(table: sa.Table, key: dict[str, Any], run_id: str) -> str:
    name, _ = day_partition(table, key)
    return f"{name}{PARTITION_MARK}{hashlib.sha256(run_id.encode()).hexdigest()[:8]}{PARTITION_MARK}"


def _id_range(engine: sa.Engine, column: sa.Column, lower: str | None, upper: str | None) -> tuple[str, str]:
    """A shard's ids `[lower, upper)` (None: unbounded) as an SQL condition and as partition bounds."""

    def literal(value: str) -> str:
        return str(sa.literal(value).compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))

    ids = sa.column(column.name, column.type)
    conditions = [ids.is_not(None)]
    conditions += [] if lower is None else [ids >= lower]
    conditions += [] if upper is None else [ids < upper]
    condition = sa.and_(*conditions).compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True})
    start = "MINVALUE" if lower is None else literal(lower)
    end = "MAXVALUE" if upper is None else literal(upper)
    return str(condition), f"FROM ({start}) TO ({end})"


def _create(engine: sa.Engine, name: str, table: sa.Table, suffix: str = "") -> str:
    """`CREATE TABLE name` with `table`'s columns (no key, no index), then `suffix`."""
    columns = [sa.Column(c.name, c.type, nullable=c.nullable) for c in table.columns]
    create = CreateTable(sa.Table(name, sa.MetaData(), *columns)).compile(dialect=engine.dialect)
    return f"{str(create).rstrip()} {suffix}"


def load_shard(
    engine: sa.Engine,
    table: sa.Table,
    key: dict[str, Any],
    run_id: str,
    index: int,
    ids: tuple[str | None, str | None],
    schema: pa.Schema,
    batches: Iterable[pa.RecordBatch],
) -> tuple[str, int]:
    """PostgreSQL: a shard's rows into a table of its own (`shard_table`), in one transaction.

    The table gets the day's primary key and a CHECK that its rows are the day's and in the shard's
    id range `ids` (`[lower, upper)`, None unbounded): the publish attaches it without reading it,
    and a row outside the range fails the load instead of reaching another shard's partition.
    A killed try leaves nothing (its transaction rolls back). Returns the table's name and its rows.
    """
    name = shard_table(table, key, run_id, index)
    in_range, _ = _id_range(engine, table.c.entity_id, *ids)
    with adbc_connection(engine) as conn:
        with conn.cursor() as cursor:
            cursor.execute(_create(engine, name, table))
            in_day = _condition(engine, table, key)
            cursor.execute(f'ALTER TABLE "{name}" ADD CONSTRAINT in_shard CHECK ({in_day} AND {in_range})')
            rows = cursor.adbc_ingest(name, pa.RecordBatchReader.from_batches(schema, batches), mode="append")
            # Built once the rows are in: a sort, far faster than an index kept up row by row.
            cursor.execute(f'ALTER TABLE "{name}" ADD PRIMARY KEY ({_primary_key(table)})')
        conn.commit()
    return name, rows


def attach_shards(
    engine: sa.Engine,
    table: sa.Table,
    key: dict[str, Any],
    run_id: str,
    shards: Sequence[tuple[str, str | None, str | None]],
) -> None:
    """PostgreSQL: publish a day from its shards' tables (`load_shard`: each its name and id range),
    which become the partitions of a new day partition swapped in for the day's, in one transaction.

    Metadata only: every CHECK and index is the shards' own, so no row is read or written. Readers
    see the old day until the commit and the whole new day after it. A retry after the commit finds
    the day published already. Then the run's tables left by failed tries of its shards are dropped.
    """
    name, _ = day_partition(table, key)
    run_prefix = _run_prefix(table, key, run_id)
    fresh = run_prefix.removesuffix(PARTITION_MARK)
    with adbc_connection(engine) as conn:
        with conn.cursor() as cursor:
            cursor.execute(literal_sql(engine, partition_lock(table, key)))
            cursor.fetchall()
            if _parent(cursor, shards[0][0]) != name:
                cursor.execute(
                    _create(engine, fresh, table, f"PARTITION BY RANGE ({table.c.entity_id.name})")
                )
                cursor.execute(f'ALTER TABLE "{fresh}" ADD PRIMARY KEY ({_primary_key(table)})')
                for shard, lower, upper in shards:
                    _, shard_bounds = _id_range(engine, table.c.entity_id, lower, upper)
                    cursor.execute(
                        f'ALTER TABLE "{fresh}" ATTACH PARTITION "{shard}" FOR VALUES {shard_bounds}'
                    )
                _swap_in(engine, cursor, table, key, fresh)
            cursor.execute(
                "SELECT relname FROM pg_class WHERE relkind = 'r' AND NOT relispartition "
                f"AND starts_with(relname, '{run_prefix}')"
            )
            for (orphan,) in cursor.fetchall():
                cursor.execute(f'DROP TABLE "{orphan}"')
        conn.commit()


def _parent(cursor: Any, name: str) -> str | None:
    """PostgreSQL: the partitioned table `name` is a partition of, if any."""
    cursor.execute(
        "SELECT p.relname FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent "
        f"WHERE i.inhrelid = to_regclass('\"{name}\"')"
    )
    found = cursor.fetchall()
    return found[0][0] if found else None
