"""A day's sources staged on local disk, then deduplicated, joined and sorted by DuckDB in bounded memory.

Each source's batches are checked as they arrive (`include.ingest.checks`) and leave two files in a
temporary folder: the typed rows with their reasons (Parquet, what DuckDB queries), and the rows as
they arrived (Arrow IPC, read back only for the rows quarantined), with the file each came from.
Columns with a declared set of allowed values travel as one-byte codes, so the join and the sort
move little more than the ids. A row its reader could not place on the day (`READ_REASON`) is
quarantined with that reason and staged with no id: it is none of the day's ids, so it neither
joins nor makes the day's row of its id a duplicate.

DuckDB finds the ids repeated within a source over the whole day, joins the valid rows of every
source on the entity id and sorts them by it, spilling to the folder beyond its memory limit: memory
follows the batch size and the limit, not the day.

A day on which every row passed its checks and every source read as many rows is most likely clean
(every row joins): its partition is then sorted straight away, without counting the ids first, and
checked on the way (`clean_partition_batches`); in the sorted join a repeated id is adjacent, and a
row that joins nothing leaves the join short. A day that proves not clean raises `NotClean`, and the
caller counts the ids (`assemble`) and writes it as any other.
"""

from __future__ import annotations

import bisect
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from include.ingest.checks import (
    ARROW_TYPES,
    REASON_SEPARATOR,
    ColumnRules,
    check_batch,
    duplicate_reason,
    source_rules,
    value_set,
)
from include.ingest.sources import FILE_KEY, READ_REASON
from include.ingest.validate import record_json
from include.io.bulk import read_ahead
from include.usecases.spec import UseCase

log = logging.getLogger(__name__)

CODE_LIMIT = 255  # allowed values beyond this travel as they are, not as one-byte codes
ROW = "_row"  # the row's position in its source for the day, from 0 (files in key order)
HEAD, TAIL = "_head", "_tail"
CHUNK_ROWS = 10_000  # quarantined rows formatted at a time
# The staged files are read once, locally: dictionary pages cost more to build than they save (a 1 M
# row day: 1.9 s of 5.9 s). Only the reasons keep them: DuckDB 2.0 drops an `IS NULL` filter on a
# plain-encoded text column of a later row group when joining (rows with a reason read as valid).
STAGE_DICTIONARY = [HEAD, TAIL]


class NotClean(Exception):
    """The day assumed clean repeats an id or has a row that joins nothing: its ids must be counted."""


class QuarantineRow(NamedTuple):
    """One quarantined row of a source, in the quarantine's column order (after `source`)."""

    row_number: int
    file: str | None
    file_row_number: int | None
    entity_id: str | None
    reasons: str
    record: str


@dataclass(frozen=True)
class SourceCounts:
    """What became of one source's rows."""

    read: int
    failed_checks: int
    quarantined: int


class RawRows:
    """A source's rows as they arrived, on disk batch by batch, read back by row number."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = pa.OSFile(str(path), "wb")
        self._blocks: list[tuple[int, int]] = []  # (file offset, length) per batch
        self._starts: list[int] = []
        self._files: list[tuple[int, str]] = []  # (first row, URI) per source file, as batches name them
        self.rows = 0

    def append(self, batch: pa.RecordBatch) -> None:
        named = (batch.schema.metadata or {}).get(FILE_KEY)
        if named is not None and (not self._files or self._files[-1][1] != named.decode()):
            self._files.append((self.rows, named.decode()))
        # Streamed into the file itself: each batch its own IPC stream, found again by its offset.
        offset = self._file.tell()
        with pa.ipc.new_stream(self._file, batch.schema) as writer:
            writer.write_batch(batch)
        self._blocks.append((offset, self._file.tell() - offset))
        self._starts.append(self.rows)
        self.rows += batch.num_rows

    def close(self) -> None:
        self._file.close()

    def take(self, rows: list[int]) -> Iterator[tuple[int, dict]]:
        """(row number, row as a dict of Python values) for the sorted row numbers given."""
        cached: tuple[int, pa.RecordBatch] | None = None
        with self.path.open("rb") as file:
            for row in rows:
                block = bisect.bisect_right(self._starts, row) - 1
                if cached is None or cached[0] != block:
                    offset, length = self._blocks[block]
                    file.seek(offset)
                    cached = (block, pa.ipc.open_stream(file.read(length)).read_next_batch())
                batch = cached[1]
                local = row - self._starts[block]
                yield row, {name: batch.column(name)[local].as_py() for name in batch.schema.names}

    def file_of(self, row: int) -> tuple[str | None, int | None]:
        """The file a row came from and its row number in that file (from 0); (None, None) for a table."""
        found = bisect.bisect_right(self._files, row, key=lambda entry: entry[0]) - 1
        if found < 0:
            return None, None
        first, uri = self._files[found]
        return uri, row - first


class DayStage:
    """One day of a use case's sources, staged under `workdir` and assembled by DuckDB."""

    def __init__(self, spec: UseCase, sources: list[str], workdir: Path, memory_limit_mb: int) -> None:
        import duckdb

        self.spec = spec
        self.workdir = workdir
        self.key = spec.entity_id
        self.columns = {name: list(spec.source(name).columns) for name in sources}
        self.raw = {name: RawRows(workdir / f"{name}.raw.arrow") for name in sources}
        self.codes = {
            name: value_set(column)
            for name, column in spec.columns.items()
            if name != self.key and column.allowed and len(column.allowed) <= CODE_LIMIT
        }
        self.counts: dict[str, SourceCounts] = {}
        self.failed = dict.fromkeys(sources, 0)  # per source, the rows that failed their own checks
        # Per source, the rows its reader placed on no day (a SQLite date that is none): every day
        # reads and quarantines them, so they are no day's own fault.
        self.unplaced = dict.fromkeys(sources, 0)
        self.db = duckdb.connect(
            config={
                "memory_limit": f"{memory_limit_mb}MB",
                "temp_directory": str(workdir / "spill"),
                "preserve_insertion_order": False,
            }
        )

    def close(self) -> None:
        for raw in self.raw.values():
            raw.close()
        self.db.close()

    def add_source(self, name: str, batches: Iterable[pa.RecordBatch]) -> int:
        """Check and stage every batch of one source; returns the rows read.

        Sources may be added at once from several threads: each touches only its own files.
        """
        rules = source_rules({c: self.spec.columns[c] for c in self.columns[name]})
        raw = self.raw[name]
        started = time.perf_counter()
        writer = None
        try:
            for batch, read_reason in map(_read_reason, read_ahead(batches)):
                staged = self._staged(batch, rules, raw.rows, read_reason)
                if writer is None:
                    writer = pq.ParquetWriter(
                        self._staged_path(name),
                        staged.schema,
                        compression="none",
                        use_dictionary=STAGE_DICTIONARY,
                    )
                writer.write_table(staged)
                raw.append(batch)
                self.failed[name] += pc.count(pc.coalesce(staged[HEAD], staged[TAIL])).as_py()
                self.unplaced[name] += 0 if read_reason is None else len(read_reason) - read_reason.null_count
        finally:
            raw.close()
            if writer is not None:
                writer.close()
        log.info(
            "source %s: %d rows checked and staged in %.2fs", name, raw.rows, time.perf_counter() - started
        )
        return raw.rows

    def _staged_path(self, name: str) -> Path:
        return self.workdir / f"{name}.staged.parquet"

    def _staged(
        self, batch: pa.RecordBatch, rules: list[ColumnRules], first_row: int, read_reason: pa.Array | None
    ) -> pa.Table:
        checked = check_batch(batch, rules, self.key)
        # From numpy, not a Python range: boxing a million ints cost more than checking them.
        arrays = {ROW: pa.array(np.arange(first_row, first_row + batch.num_rows, dtype=np.int64))}
        for name, typed in checked.typed.items():
            arrays[name] = checked.codes[name].cast(pa.uint8()) if name in self.codes else typed
        arrays[HEAD], arrays[TAIL] = checked.head, checked.tail
        if read_reason is not None and read_reason.null_count < len(read_reason):
            unplaced = read_reason.is_valid()
            arrays[self.key] = pc.if_else(unplaced, pa.scalar(None, arrays[self.key].type), arrays[self.key])
            both = pc.binary_join_element_wise(
                read_reason, checked.head, pa.scalar(REASON_SEPARATOR, pa.large_string())
            )
            arrays[HEAD] = pc.coalesce(both, read_reason, checked.head)
        return pa.table(arrays)

    def assemble(self) -> dict[str, SourceCounts]:
        """Count each id's rows and valid rows per source over the whole day; count what became of rows.

        One aggregation over the ids of every source gives, per id and source, how many rows have it
        (more than one: a duplicate) and whether they all passed their checks; an id joins when each
        source has it exactly once and valid.
        """
        key, started = self.key, time.perf_counter()
        parts = " UNION ALL ".join(
            f"SELECT {key}, {i} AS src, {HEAD} IS NULL AND {TAIL} IS NULL AS ok FROM {self._table(i)}"
            for i in range(len(self.names))
        )
        per_source = ", ".join(
            f"count(*) FILTER (WHERE src = {i}) AS n{i}, "
            f"coalesce(bool_and(ok) FILTER (WHERE src = {i}), false) AS ok{i}"
            for i in range(len(self.names))
        )
        joins = " AND ".join(f"n{i} = 1 AND ok{i}" for i in range(len(self.names)))
        self._all(
            f"CREATE TABLE ids AS SELECT *, {joins} AS joins FROM ("
            f"SELECT {key}, {per_source} FROM ({parts}) WHERE {key} IS NOT NULL GROUP BY {key})"
        )
        valid = ", ".join(f"count(*) FILTER (WHERE n{i} = 1 AND ok{i})" for i in range(len(self.names)))
        joined, *valid_counts = self.db.execute(
            f"SELECT count(*) FILTER (WHERE joins), {valid} FROM ids"
        ).fetchone()
        for name, count in zip(self.names, valid_counts, strict=True):
            read = self.raw[name].rows
            self.counts[name] = SourceCounts(read, read - count, read - joined)
        self.joined = joined
        log.info("%d ids valid in every source, counted in %.2fs", joined, time.perf_counter() - started)
        return self.counts

    @property
    def names(self) -> list[str]:
        return list(self.columns)

    def _table(self, i: int) -> str:
        return f"read_parquet('{self._staged_path(self.names[i])}')"

    def top_faults(self, name: str) -> list[tuple[str, int]]:
        """What is most often first wrong with a source's quarantined rows, as pandas'
        `value_counts().head(3)` gives it: by count, ties in the order the rows are quarantined.

        A fault is the column of the row's first failed check; for the entity id, what is wrong with
        it (`customerID: duplicate id`: a file delivered twice; `customerID: no valid row in billing`:
        the fault is the other source's), so the error points at the cause."""
        i, key, read = self.names.index(name), self.key, self.raw[name].rows
        others = ", ".join(n for n in self.names if n != name)
        query = f"""
            WITH rows AS (
                SELECT s.*, ids.n{i} AS n, ids.joins FROM {self._table(i)} s LEFT JOIN ids USING ({key})
            )
            SELECT col, count(*) AS n FROM (
                SELECT CASE WHEN {HEAD} IS NOT NULL THEN split_part({HEAD}, ': ', 1)
                            WHEN n > 1 THEN '{key}: duplicate id'
                            ELSE split_part({TAIL}, ': ', 1) END AS col, {ROW} AS pos
                FROM rows WHERE {HEAD} IS NOT NULL OR {TAIL} IS NOT NULL OR n > 1
                UNION ALL
                SELECT '{key}: no valid row in {others}', {read} + {ROW} FROM rows
                WHERE {HEAD} IS NULL AND {TAIL} IS NULL AND n = 1 AND NOT joins
            ) GROUP BY col ORDER BY n DESC, min(pos) LIMIT 3
        """
        return [(col, n) for col, n in self._all(query)]

    @property
    def may_be_clean(self) -> bool:
        """Whether every row passed its checks and every source read as many rows (module doc)."""
        return not any(self.failed.values()) and len({raw.rows for raw in self.raw.values()}) == 1

    def partition_batches(self, ds_value: pa.Scalar, batch_rows: int) -> Iterator[pa.RecordBatch]:
        """The joined valid rows sorted by the entity id, typed as the spec declares, with `ds`
        (after `assemble`)."""
        # On a clean day (every row of every source joins) there is nothing to filter.
        clean = all(c.quarantined == 0 for c in self.counts.values())
        where = "" if clean else f"WHERE s0.{self.key} IN (SELECT {self.key} FROM ids WHERE joins)"
        yield from self._sorted_join(where, ds_value, batch_rows)

    def clean_partition_batches(self, ds_value: pa.Scalar, batch_rows: int) -> Iterator[pa.RecordBatch]:
        """`partition_batches` of a day that `may_be_clean`, without `assemble`; `NotClean` on the way
        when it is not, and its counts in `counts` when it is."""
        rows, last = 0, None
        for batch in self._sorted_join("", ds_value, batch_rows):
            ids = batch.column(self.key)
            if len(ids) and (last == ids[0] or pc.any(pc.equal(ids[1:], ids[:-1])).as_py()):
                raise NotClean(f"{self.key}: an id repeats")
            rows, last = rows + len(ids), ids[-1] if len(ids) else last
            yield batch
        read = next(iter(self.raw.values())).rows
        if rows != read:
            raise NotClean(f"{read - rows} rows join nothing")
        self.counts = {name: SourceCounts(read, 0, 0) for name in self.names}
        self.joined = rows

    def _sorted_join(self, where: str, ds_value: pa.Scalar, batch_rows: int) -> Iterator[pa.RecordBatch]:
        key = self.key
        provider = {}
        for i, name in enumerate(self.names):
            for column in self.columns[name]:
                provider.setdefault(column, i)
        select = ", ".join(f"s{provider[c]}.{c}" for c in self.spec.columns)
        joins = " ".join(
            f"JOIN {self._table(i)} s{i} ON s{i}.{key} = s0.{key}" for i in range(1, len(self.names))
        )
        query = f"SELECT {select} FROM {self._table(0)} s0 {joins} {where} ORDER BY s0.{key}"
        # Fetched in quarter row groups: the writer regroups them, and fewer rows are held at a time.
        reader = self.db.cursor().sql(query).to_arrow_reader(max(1, batch_rows // 4))
        yield from read_ahead(self._typed(batch, ds_value) for batch in reader)

    def _typed(self, batch: pa.RecordBatch, ds_value: pa.Scalar) -> pa.RecordBatch:
        """A batch of the sorted join, typed as the spec declares (`_decoded`), with `ds`."""
        arrays = [self._decoded(name, batch.column(name)) for name in self.spec.columns]
        arrays.append(pa.repeat(ds_value, batch.num_rows))
        return pa.RecordBatch.from_arrays(arrays, names=[*self.spec.columns, "ds"])

    def _decoded(self, name: str, values: pa.Array) -> pa.Array:
        """A column of the sorted join in its declared type; a coded one dictionary-encoded over its
        allowed values, which the Parquet writer takes as they are (`include.ingest.parquet`)."""
        if name in self.codes:
            return pa.DictionaryArray.from_arrays(values, self.codes[name])
        return values.cast(ARROW_TYPES[self.spec.columns[name].type])

    def quarantine_rows(self, name: str) -> Iterator[QuarantineRow]:
        """Each quarantined row of a source.

        The rows that failed their own checks first, by row number, then the valid rows with no
        valid partner in another source.
        """
        i, key = self.names.index(name), self.key
        rows = f"SELECT s.*, ids.n{i} AS n, ids.joins FROM {self._table(i)} s LEFT JOIN ids USING ({key})"
        failed = self._cursor(
            f"SELECT {ROW}, {key}, {HEAD}, coalesce(n > 1, false), {TAIL} FROM ({rows}) "
            f"WHERE {HEAD} IS NOT NULL OR {TAIL} IS NOT NULL OR n > 1 ORDER BY {ROW}"
        )
        reasons = {}
        for row, value, head, duplicate, tail in _rows(failed):
            parts = [head, duplicate_reason(key, value) if duplicate else None, tail]
            reasons[row] = REASON_SEPARATOR.join(p for p in parts if p)
            if len(reasons) >= CHUNK_ROWS:
                yield from self._with_records(name, reasons)
                reasons = {}
        yield from self._with_records(name, reasons)
        others = ", ".join(n for n in self.names if n != name)
        reason = f"{key}: no valid row in {others} for this id"
        unmatched = self._cursor(
            f"SELECT {ROW} FROM ({rows}) WHERE {HEAD} IS NULL AND {TAIL} IS NULL AND n = 1 AND NOT joins "
            f"ORDER BY {ROW}"
        )
        chunk = {}
        for (row,) in _rows(unmatched):
            chunk[row] = reason
            if len(chunk) >= CHUNK_ROWS:
                yield from self._with_records(name, chunk)
                chunk = {}
        yield from self._with_records(name, chunk)

    def _all(self, query: str) -> list[tuple]:
        """Run `query` on a cursor of its own and return its rows."""
        cursor = self.db.cursor()
        try:
            return cursor.execute(query).fetchall()
        finally:
            cursor.close()

    def _cursor(self, query: str):
        """A cursor of its own that has run `query`, so that its rows stream while others run."""
        cursor = self.db.cursor()
        cursor.execute(query)
        return cursor

    def _with_records(self, name: str, reasons: dict[int, str]) -> Iterator[QuarantineRow]:
        raw = self.raw[name]
        for row, values in raw.take(sorted(reasons)):
            entity = None if values.get(self.key) is None else str(values[self.key])
            yield QuarantineRow(row, *raw.file_of(row), entity, reasons[row], record_json(values))


def _read_reason(batch: pa.RecordBatch) -> tuple[pa.RecordBatch, pa.Array | None]:
    """A batch without its reader's reasons (`READ_REASON`), and those reasons if it had them."""
    if READ_REASON not in batch.schema.names:
        return batch, None
    return batch.drop_columns([READ_REASON]), batch.column(READ_REASON)


def _rows(cursor) -> Iterator[tuple]:
    """A DuckDB cursor's rows, fetched a chunk at a time."""
    while chunk := cursor.fetchmany(CHUNK_ROWS):
        yield from chunk
