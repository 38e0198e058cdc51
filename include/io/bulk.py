"""The databases' bulk paths: Arrow batches in and out, a partition replaced in one transaction.

PostgreSQL goes through ADBC (binary COPY under the hood) both ways; a table partitioned by day
(`predictions`) has the day's partition swapped for a freshly loaded table instead of deleting its
rows (`make bench`: faster at 1 M and 5 M rows, see the README). SQLite, the embedded default,
has no COPY: its rows go through the driver's `executemany` inside the same single transaction,
which is the fastest path SQLite itself offers.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Generator, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.schema import CreateTable

from include.platform.tables import (
    PARTITION_MARK,
    day_partition,
    default_partition,
    partition_filter,
    partition_lock,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
_END: Any = object()
# The size of the batches ADBC's PostgreSQL driver fills before handing one over (its default: 16 MB).
# A 1 M-row ingest read peaked 60 MB lower with 4 MB batches, at the same speed.
READ_BATCH_BYTES = 4 << 20


def is_postgres(engine: sa.Engine) -> bool:
    return engine.dialect.name == "postgresql"


@contextlib.contextmanager
def adbc_connection(engine: sa.Engine) -> Iterator[Any]:
    """An ADBC connection to the same PostgreSQL database as `engine`, transactions on (autocommit off)."""
    import adbc_driver_postgresql.dbapi as adbc

    uri = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with adbc.connect(uri) as conn:
        yield conn


def literal_sql(engine: sa.Engine, statement: sa.Executable) -> str:
    """A statement as SQL text with its values inlined (for ADBC, which takes no SQLAlchemy binds).

    Only for values the platform made itself (dates, use case names): SQLAlchemy quotes them.
    """
    return str(statement.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))


@contextlib.contextmanager
def query_cursor(engine: sa.Engine, query: sa.Select) -> Iterator[Any]:
    """An ADBC cursor on PostgreSQL that has run `query`: fetch Arrow from it, whole or in batches."""
    with adbc_connection(engine) as conn, conn.cursor() as cursor:
        cursor.adbc_statement.set_options(**{"adbc.postgresql.batch_size_hint_bytes": str(READ_BATCH_BYTES)})
        cursor.execute(literal_sql(engine, query))
        yield cursor


def read_batches(engine: sa.Engine, query: sa.Select, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """The rows of `query` on PostgreSQL as Arrow record batches of at most `batch_rows` rows, streamed."""
    if not is_postgres(engine):
        raise ValueError(f"read_batches reads PostgreSQL through ADBC, not {engine.dialect.name}")
    with query_cursor(engine, query) as cursor:
        for batch in cursor.fetch_record_batch():
            yield from _rechunk(batch, batch_rows)


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
            conn.exec_driver_sql(insert, _sqlite_rows(batch))
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


def read_ahead(items: Iterable[T]) -> Iterator[T]:
    """`items` in order, each next one fetched in a background thread while the caller works on this one.

    A database or Parquet reader spends its time in C code that releases the GIL, so reading the next
    batch overlaps the caller's work on the current one; at most two batches are held at a time.
    """
    iterator = iter(items)
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead") as pool:
            pending = pool.submit(next, iterator, _END)
            while (item := pending.result()) is not _END:
                pending = pool.submit(next, iterator, _END)
                yield item
    finally:
        if isinstance(iterator, Generator):
            iterator.close()


def _rechunk(batch: pa.RecordBatch, batch_rows: int) -> Iterator[pa.RecordBatch]:
    for offset in range(0, batch.num_rows, batch_rows):
        yield batch.slice(offset, batch_rows)


def _sqlite_rows(batch: pa.RecordBatch) -> list[tuple]:
    """A batch's rows as tuples, dates and times as the text SQLAlchemy stores in SQLite."""
    return list(zip(*(_sqlite_text(column).to_pylist() for column in batch.columns), strict=True))


def _sqlite_text(column: pa.Array) -> pa.Array:
    if pa.types.is_timestamp(column.type):
        return pc.strftime(column.cast(pa.timestamp("us", tz="UTC")), "%Y-%m-%d %H:%M:%S")
    if pa.types.is_date(column.type):
        return column.cast(pa.string())
    return column
