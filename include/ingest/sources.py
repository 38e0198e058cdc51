"""Reading one day from each kind of source, as a stream of Arrow batches of bounded size.

A SQL table comes through ADBC on PostgreSQL (binary COPY) and in chunks of rows on SQLite; files
under a prefix come one at a time (downloaded in parts from S3, never whole in memory) through
Arrow's streaming CSV reader or a Parquet file's batches, every CSV value as text. The structural
checks (table, columns, files) run before the first batch is asked for; a file's own problems
(unreadable, a missing or unknown column) stop the stream with an error naming the file.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import sqlalchemy as sa

from include.ingest.parquet import row_groups
from include.ingest.validate import IngestError, check_columns
from include.io.bulk import is_postgres, read_batches
from include.io.stores import ObjectStore
from include.partition import Partition
from include.usecases.spec import Source

log = logging.getLogger(__name__)

# Text parsed per CSV block. Arrow's reader parses blocks ahead on its threads; with 8 MB blocks that
# held ~250 MB more on a 5 M-row file than with 1 MB ones, which are regrouped into batches below.
CSV_BLOCK_BYTES = 1 << 20


def read_sql_day(
    engine: sa.Engine, source: Source, partition: Partition, batch_rows: int
) -> Iterator[pa.RecordBatch]:
    """The source table's rows whose date column falls in the partition's day, in batches.

    Identifiers come from the validated spec and are checked against the table (now, not when the
    first batch is read); the dates are bind parameters (inlined by SQLAlchemy for ADBC on
    PostgreSQL: they are the platform's own values).
    """
    where = f"source {source.name} (table {source.table}), ds={partition.key}"
    inspector = sa.inspect(engine)
    if not inspector.has_table(source.table):
        raise IngestError(f"{where}: table not found")
    present = [c["name"] for c in inspector.get_columns(source.table)]
    missing = [c for c in (*source.columns, source.date_column) if c not in present]
    if missing:
        raise IngestError(f"{where}: missing column(s) {missing}")
    day = sa.column(source.date_column, sa.Date)
    query = (
        sa.select(*(sa.column(c) for c in source.columns))
        .select_from(sa.table(source.table))
        .where(day >= partition.ds, day < partition.end.date())
    )
    if is_postgres(engine):
        return read_batches(engine, query, batch_rows)
    return _chunks(engine, query, list(source.columns), batch_rows)


def _chunks(
    engine: sa.Engine, query: sa.Select, columns: list[str], batch_rows: int
) -> Iterator[pa.RecordBatch]:
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=batch_rows).execute(query)
        for rows in result.partitions():
            values = list(zip(*rows, strict=True))
            yield pa.RecordBatch.from_arrays([_array(v) for v in values], names=columns)


def _array(values: tuple) -> pa.Array:
    """One column of SQLite values; a column mixing types (SQLite allows it) comes as text."""
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else str(v) for v in values], pa.large_string())


def read_files_day(
    store: ObjectStore, source: Source, partition: Partition, batch_rows: int
) -> Iterator[pa.RecordBatch]:
    """Every file under the source's prefix for the day, in key order, in batches."""
    prefix = source.prefix.format(ds=partition.key)
    keys = store.list_keys(prefix)
    if not keys:
        raise IngestError(f"source {source.name}, ds={partition.key}: no files under {store.uri(prefix)}")
    return _files(store, source, partition, keys, batch_rows)


def _files(
    store: ObjectStore, source: Source, partition: Partition, keys: list[str], batch_rows: int
) -> Iterator[pa.RecordBatch]:
    columns = list(source.columns)
    for key in keys:
        where = f"source {source.name}, ds={partition.key}, file {store.uri(key)}"
        # Read through plain reads, not a memory map: a mapped file's pages would count as the task's
        # memory as they are read (a 5 M-row CSV: +300 MB).
        with store.local_path(key) as path, pa.OSFile(str(path)) as file:
            reader, names = _open(file, source, where)
            check_columns(names, columns, where)
            for table in row_groups(_checked(reader, where, source.format), batch_rows):
                yield from table.select(columns).combine_chunks().to_batches()
    log.info("source %s, ds=%s: %d files", source.name, partition.key, len(keys))


def _checked(reader: pa.RecordBatchReader, where: str, kind: str) -> Iterator[pa.RecordBatch]:
    """The reader's batches; a parser error names the file."""
    while True:
        try:
            yield reader.read_next_batch()
        except StopIteration:
            return
        except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
            raise IngestError(f"{where}: unreadable {kind}: {exc}") from exc


def _open(file: pa.NativeFile, source: Source, where: str) -> tuple[pa.RecordBatchReader, list[str]]:
    """A file's batches and its column names; a CSV with every value as text, blanks kept (never null)."""
    try:
        if source.format == "csv":
            reader = pacsv.open_csv(
                file,
                read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES),
                convert_options=pacsv.ConvertOptions(
                    column_types=dict.fromkeys(source.columns, pa.large_string()), strings_can_be_null=False
                ),
            )
        else:
            parquet = pq.ParquetFile(file)
            reader = pa.RecordBatchReader.from_batches(parquet.schema_arrow, parquet.iter_batches())
        # The names are decoded here: a binary file fails now, naming itself, not in the caller.
        return reader, reader.schema.names
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:  # any parser error: unreadable
        raise IngestError(f"{where}: unreadable {source.format}: {exc}") from exc
