"""The databases' bulk paths: Arrow batches in and out.

PostgreSQL goes through ADBC (binary COPY under the hood) both ways; SQLite, the embedded default,
has no COPY: its rows go through the driver's `executemany` (`sqlite_rows`). Replacing a day of a
platform table with them is `include.platform.day_swap`'s.
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


def sqlite_rows(batch: pa.RecordBatch) -> list[tuple]:
    """A batch's rows as tuples, dates and times as the text SQLAlchemy stores in SQLite."""
    return list(zip(*(_sqlite_text(column).to_pylist() for column in batch.columns), strict=True))


def _sqlite_text(column: pa.Array) -> pa.Array:
    if pa.types.is_timestamp(column.type):
        return pc.strftime(column.cast(pa.timestamp("us", tz="UTC")), "%Y-%m-%d %H:%M:%S")
    if pa.types.is_date(column.type):
        return column.cast(pa.string())
    return column
