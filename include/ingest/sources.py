"""Reading one day from each kind of source, as a stream of Arrow batches of bounded size.

A SQL table comes through ADBC on PostgreSQL (binary COPY) and in chunks of rows on SQLite; files
under a prefix come one at a time (downloaded in parts from S3, never whole in memory) through
Arrow's streaming CSV reader or a Parquet file's batches, every CSV value as text. The structural
checks (table, columns, files) run before the first batch is asked for; a file's own problems
(unreadable, a missing or unknown column) stop the stream with an error naming the file.

Which objects under a day's prefix are read (`day_files`): those directly under it, and those of its
subfolders too only when the source says `recursive: true`; never an object whose name, or the name
of a folder between it and the prefix, starts with `.` or `_` (hidden files, `_SUCCESS` and other
markers, `_temporary/` folders). A prefix ending with `/` names a folder (`billing/ds={ds}/`); any
other prefix starts the names (`billing/{ds}-` reads `billing/2025-03-05-a.csv`). Each batch of a
file names it (`FILE_KEY` in its schema metadata), so that a quarantined row says which file it came
from.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Iterator

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import sqlalchemy as sa

from include.ingest.checks import shown
from include.ingest.parquet import row_groups
from include.ingest.validate import IngestError, check_columns
from include.io.bulk import is_postgres, read_batches
from include.io.lineage import report_lineage, table_uri
from include.io.stores import ObjectStore
from include.partition import Partition
from include.usecases.spec import Source

log = logging.getLogger(__name__)

# Text parsed per CSV block. Arrow's reader parses blocks ahead on its threads; with 8 MB blocks that
# held ~250 MB more on a 5 M-row file than with 1 MB ones, which are regrouped into batches below.
CSV_BLOCK_BYTES = 1 << 20
# ADBC hands rows over in batches of ~23 k rows (`READ_BATCH_BYTES`), regrouped into batches of this
# many: a 1 M-row day took 0.52 s to check in 100 k-row batches against 0.80 s in ADBC's, and 50 k
# rows held ~30 MB less at the peak than 100 k for the same time.
SQL_BATCH_ROWS = 50_000
# A file's batches carry its URI under this key of their schema metadata.
FILE_KEY = b"ingest.file"
# A reader's reason for a row it read but could not place on the day (a SQLite date that is none),
# in a column of that name; the stage quarantines such a row and keeps it out of the day's ids.
READ_REASON = "_read_reason"
PLACED, DATE_TEXT = "_placed", "_date_text"
ISO_DATE_GLOB = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*"
SQLITE_TIME = "%Y-%m-%d %H:%M:%S"  # what SQLite's datetime() returns


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
    # The row's date travels with it, so that a quarantined row's record shows it.
    names = [*source.columns, *([source.date_column] if source.date_column not in source.columns else [])]
    report_lineage(read=[table_uri(engine, source.table)])
    if is_postgres(engine):
        day = sa.column(source.date_column, sa.Date)
        query = (
            sa.select(*(sa.column(c) for c in names))
            .select_from(sa.table(source.table))
            .where(day >= partition.ds, day < partition.end.date())
        )
        rows = min(batch_rows, SQL_BATCH_ROWS)
        return _utf8_checked(batches_of(read_batches(engine, query, rows), rows), engine, source, where)
    chunks = _chunks(
        engine, sqlite_day_query(source, partition, names), names, source.date_column, batch_rows
    )
    return _utf8_checked(chunks, engine, source, where)


def _utf8_checked(
    batches: Iterator[pa.RecordBatch], engine: sa.Engine, source: Source, where: str
) -> Iterator[pa.RecordBatch]:
    """The batches; text the driver cannot decode as UTF-8 fails the day naming the source, the
    column and the rows (SQLite: by rowid), not with the driver's bare error."""
    try:
        yield from batches
    except (sa.exc.OperationalError, pa.ArrowInvalid) as exc:
        if "decode to UTF-8" not in str(exc) and "Invalid UTF8" not in str(exc):
            raise
        found = "" if is_postgres(engine) else _undecodable(engine, source)
        raise IngestError(f"{where}: text that is not valid UTF-8{found}; fix the source rows") from exc


def _undecodable(engine: sa.Engine, source: Source, shown_rows: int = 5) -> str:
    """Which SQLite columns and rows hold text that is not UTF-8: ` in column 'x' (rowid 3, 9)`."""
    found = []
    with engine.connect() as conn:
        for column in source.columns:
            query = sa.select(sa.literal_column("rowid"), sa.cast(sa.column(column), sa.LargeBinary)).where(
                sa.func.typeof(sa.column(column)) == "text"
            )
            bad = [
                rowid
                for rowid, data in conn.execute(query.select_from(sa.table(source.table)))
                if not _utf8(data)
            ]
            if bad:
                rows = ", ".join(map(str, bad[:shown_rows])) + (
                    f" and {len(bad) - shown_rows} more" if len(bad) > shown_rows else ""
                )
                found.append(f" in column {column!r} (rowid {rows})")
    return ";".join(found)


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def sqlite_day_query(source: Source, partition: Partition, names: list[str]) -> sa.Select:
    """The day's rows of a SQLite table, whose dates are text, placed on their day in SQL.

    SQLite has no date type: a date column holds what the writer wrote. A value is a date when it is
    ISO 8601 text (a date, or a date and time with an optional `Z` or `+HH:MM` offset), or the same
    written year first with slashes (`2025/03/05`), surrounding blanks ignored, and names a real day
    (`2025-02-30` does not). A value with an offset is placed by its instant, one without by its
    wall-clock time in the use case's time zone: `2025-03-04T22:30:00-05:00` is on 2025-03-05 (UTC).

    Every other value (text that is no such date, a number, a null) places its row on no day, so
    every day's query returns that row, flagged `PLACED` false, and every day quarantines it
    (`snapshot_date: not a date: '05/03/2025'`): never lost unseen. Finding those rows takes a scan
    of the table (SQLite's own, in C): only the rows of the day and the rows of no day reach Python.
    """
    raw = sa.func.trim(sa.column(source.date_column))
    text = sa.func.replace(sa.func.substr(raw, 1, 10), "/", "-").op("||")(sa.func.substr(raw, 11))
    rows = (
        sa.select(*(sa.column(c) for c in names), text.label(DATE_TEXT)).select_from(sa.table(source.table))
    ).subquery()
    value = rows.c[DATE_TEXT]
    day, instant = sa.func.substr(value, 1, 10), sa.func.datetime(value)
    # `date(x, '+0 days')` normalises `2025-02-30` to `2025-03-02`: equal only for a real day.
    dated = sa.and_(
        value.op("GLOB")(ISO_DATE_GLOB), sa.func.date(day, "+0 days") == day, instant.is_not(None)
    )
    placed = sa.func.coalesce(dated, False)
    offset = sa.or_(value.op("GLOB")("*[+-][0-9][0-9]:[0-9][0-9]"), value.op("GLOB")("*[Zz]"))
    utc = [t.astimezone(dt.UTC).strftime(SQLITE_TIME) for t in (partition.start, partition.end)]
    local = [t.strftime(SQLITE_TIME) for t in (partition.start, partition.end)]
    on_day = sa.case(
        (offset, sa.and_(instant >= utc[0], instant < utc[1])),
        else_=sa.and_(instant >= local[0], instant < local[1]),
    )
    return sa.select(*(rows.c[c] for c in names), placed.label(PLACED)).where(sa.or_(sa.not_(placed), on_day))


def _chunks(
    engine: sa.Engine, query: sa.Select, names: list[str], date_column: str, batch_rows: int
) -> Iterator[pa.RecordBatch]:
    """The query's rows in batches; a row not `PLACED` on a day carries its reason (`READ_REASON`)."""
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=batch_rows).execute(query)
        for rows in result.partitions():
            *values, placed = list(zip(*rows, strict=True))
            dates = values[names.index(date_column)]
            reasons = [
                None if ok else _date_reason(date_column, d) for ok, d in zip(placed, dates, strict=True)
            ]
            arrays = [_array(v) for v in values] + [pa.array(reasons, pa.large_string())]
            yield pa.RecordBatch.from_arrays(arrays, names=[*names, READ_REASON])


def _date_reason(column: str, value: object) -> str:
    """Why a row's date places it on no day."""
    if value is None or not str(value).strip():
        return f"{column}: is empty"
    return f"{column}: not a date: {shown(value)}"


def _array(values: tuple) -> pa.Array:
    """One column of SQLite values; a column mixing types (SQLite allows it) comes as text."""
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else str(v) for v in values], pa.large_string())


def read_files_day(
    store: ObjectStore, source: Source, partition: Partition, batch_rows: int
) -> Iterator[pa.RecordBatch]:
    """Every file of the day (`day_files`), in key order, in batches."""
    prefix = source.prefix.format(ds=partition.key)
    listed = store.list_keys(prefix)
    keys = day_files(listed, prefix, recursive=source.recursive)
    if not keys:
        raise IngestError(f"source {source.name}, ds={partition.key}: no files under {store.uri(prefix)}")
    if len(keys) < len(listed):
        log.info(
            "source %s, ds=%s: %d of %d objects under %s ignored (subfolders, hidden files, markers)",
            source.name,
            partition.key,
            len(listed) - len(keys),
            len(listed),
            store.uri(prefix),
        )
    return _files(store, source, partition, keys, batch_rows)


def day_files(keys: list[str], prefix: str, *, recursive: bool) -> list[str]:
    """The keys under `prefix` that are the day's files (module doc), in the order given."""
    started = prefix.rsplit("/", 1)[-1]  # the start of the first name below, when not a folder
    chosen = []
    for key in keys:
        *folders, name = (started + key[len(prefix) :]).split("/")
        if folders and not recursive:
            continue
        if all(part and part[0] not in "._" for part in (*folders, name)):
            chosen.append(key)
    return chosen


def _files(
    store: ObjectStore, source: Source, partition: Partition, keys: list[str], batch_rows: int
) -> Iterator[pa.RecordBatch]:
    columns = list(source.columns)
    for key in keys:
        where = f"source {source.name}, ds={partition.key}, file {store.uri(key)}"
        # Read through plain reads, not a memory map: a mapped file's pages would count as the task's
        # memory as they are read (a 5 M-row CSV: +300 MB).
        metadata = {FILE_KEY: store.uri(key).encode()}
        report_lineage(read=[store.uri(key)])
        with store.local_path(key) as path, pa.OSFile(str(path)) as file:
            reader, names = _open(file, source, where)
            check_columns(names, columns, where)
            for batch in batches_of(_checked(reader, where, source.format), batch_rows):
                yield batch.select(columns).replace_schema_metadata(metadata)
    log.info("source %s, ds=%s: %d files", source.name, partition.key, len(keys))


def batches_of(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """The batches regrouped into batches of exactly `rows` rows (the last one may be shorter).

    The checks cost much per batch (a call per column and check), little per row.
    """
    for table in row_groups(batches, rows):
        yield from table.combine_chunks().to_batches()


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
