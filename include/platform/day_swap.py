"""Replace a day of a platform table atomically: the one place that knows how.

Readers see the old day until the commit and the new one after it; two writers of one day take
turns on `partition_lock`. Small records (run records, decisions, drift) go through `replace_rows`
inside the caller's transaction; a day's predictions through `replace_partition`, the bulk path:
on PostgreSQL a table partitioned by day (`predictions`) has the day's partition swapped for a
freshly loaded table instead of deleting its rows (docs/performance.md: faster at 1 M and 5 M
rows), any other table gets DELETE + COPY; SQLite gets DELETE + `executemany` in one transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
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
    name, bounds = day_partition(table, key)
    fresh = f"{name}{PARTITION_MARK}new"
    columns = [sa.Column(c.name, c.type, nullable=c.nullable) for c in table.columns]
    cursor.execute(str(CreateTable(sa.Table(fresh, sa.MetaData(), *columns)).compile(dialect=engine.dialect)))
    rows = cursor.adbc_ingest(fresh, reader, mode="append")
    primary_key = ", ".join(c.name for c in table.primary_key.columns)
    in_day = _condition(engine, table, key)
    cursor.execute(f'ALTER TABLE "{fresh}" ADD PRIMARY KEY ({primary_key})')
    cursor.execute(f'ALTER TABLE "{fresh}" ADD CONSTRAINT in_day CHECK ({in_day})')
    # The table's strongest lock first: every later step needs it, so two days swapped at once
    # queue here instead of deadlocking on the partitions' locks.
    cursor.execute(f'LOCK TABLE "{table.name}" IN ACCESS EXCLUSIVE MODE')
    cursor.execute(f'DROP TABLE IF EXISTS "{name}"')
    cursor.execute(f'DELETE FROM "{default_partition(table)}" WHERE {in_day}')
    cursor.execute(f'ALTER TABLE "{table.name}" ATTACH PARTITION "{fresh}" {bounds}')
    cursor.execute(f'ALTER TABLE "{fresh}" RENAME TO "{name}"')
    cursor.execute(f'ALTER INDEX "{fresh}_pkey" RENAME TO "{name}_pkey"')
    return rows
