"""Reading one day from each kind of source: a SQL table and a prefix of files in a store."""

from __future__ import annotations

import io
import logging

import pandas as pd
import sqlalchemy as sa

from include.ingest.validate import IngestError, check_columns
from include.io.bulk import is_postgres, query_cursor
from include.io.stores import ObjectStore
from include.partition import Partition
from include.usecases.spec import Source

log = logging.getLogger(__name__)


def read_sql_day(engine: sa.Engine, source: Source, partition: Partition) -> pd.DataFrame:
    """The source table's rows whose date column falls in the partition's day, as text and numbers.

    Identifiers come from the validated spec and are checked against the table; the dates are bind
    parameters (inlined by SQLAlchemy for ADBC on PostgreSQL: they are the platform's own values).
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
        # ADBC's binary COPY reads a million rows in ~2 s, where pandas.read_sql takes ~8.
        with query_cursor(engine, query) as cursor:
            frame = cursor.fetch_arrow_table().to_pandas()
    else:
        with engine.connect() as conn:
            frame = pd.read_sql(query, conn)
    log.info("%s: %d rows", where, len(frame))
    return frame


def read_files_day(store: ObjectStore, source: Source, partition: Partition) -> pd.DataFrame:
    """Every file under the source's prefix for the day, concatenated, all values as text."""
    prefix = source.prefix.format(ds=partition.key)
    keys = store.list_keys(prefix)
    if not keys:
        raise IngestError(f"source {source.name}, ds={partition.key}: no files under {store.uri(prefix)}")
    frames = []
    for key in keys:
        where = f"source {source.name}, ds={partition.key}, file {store.uri(key)}"
        try:
            data = store.read_bytes(key)
            if source.format == "csv":
                frame = pd.read_csv(io.BytesIO(data), dtype="str", keep_default_na=False)
            else:
                frame = pd.read_parquet(io.BytesIO(data))
        except Exception as exc:  # any parser error means the same thing: unreadable
            raise IngestError(f"{where}: unreadable {source.format}: {exc}") from exc
        check_columns(list(frame.columns), list(source.columns), where)
        frames.append(frame[list(source.columns)])
    log.info("source %s, ds=%s: %d files", source.name, partition.key, len(keys))
    return pd.concat(frames, ignore_index=True)
