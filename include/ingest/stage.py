"""A day's sources staged on local disk, then deduplicated, joined and sorted by DuckDB in bounded memory.

Each source's batches are checked as they arrive (`include.ingest.checks`) and leave two files in a
temporary folder: the typed rows with their reasons (Parquet, what DuckDB queries), and the rows as
they arrived (Arrow IPC, read back only for the rows quarantined). Columns with a declared set of
allowed values travel as one-byte codes, so the join and the sort move little more than the ids.

DuckDB finds the ids repeated within a source over the whole day, joins the valid rows of every
source on the entity id and sorts them by it, spilling to the folder beyond its memory limit: memory
follows the batch size and the limit, not the day.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from include.ingest.checks import (
    ARROW_TYPES,
    ColumnRules,
    check_batch,
    duplicate_reason,
    source_rules,
    value_set,
)
from include.ingest.validate import record_json
from include.io.bulk import read_ahead
from include.usecases.spec import UseCase

log = logging.getLogger(__name__)

CODE_LIMIT = 255  # allowed values beyond this travel as they are, not as one-byte codes
ROW = "_row"  # the row's position in its source for the day, from 0 (files in key order)
HEAD, TAIL = "_head", "_tail"


@dataclass(frozen=True)
class SourceCounts:
    """What became of one source's rows."""

    read: int
    failed_checks: int
    quarantined: int
    top_columns: list[tuple[str, int]]


class RawRows:
    """A source's rows as they arrived, on disk batch by batch, read back by row number."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = path.open("wb")
        self._blocks: list[tuple[int, int]] = []  # (file offset, length) per batch
        self._starts: list[int] = []
        self.rows = 0

    def append(self, batch: pa.RecordBatch) -> None:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, batch.schema) as writer:
            writer.write_batch(batch)
        data = sink.getvalue()
        self._blocks.append((self._file.tell(), data.size))
        self._starts.append(self.rows)
        self._file.write(data)
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


class DayStage:
    """One day of a use case's sources, staged under `workdir` and assembled by DuckDB."""

    def __init__(self, spec: UseCase, workdir: Path, memory_limit_mb: int) -> None:
        import duckdb

        self.spec = spec
        self.workdir = workdir
        self.key = spec.entity_id
        self.raw: dict[str, RawRows] = {}
        self.columns: dict[str, list[str]] = {}
        self.codes: dict[str, pa.Array] = {}
        self.counts: dict[str, SourceCounts] = {}
        self.db = duckdb.connect(
            config={
                "memory_limit": f"{memory_limit_mb}MB",
                "temp_directory": str(workdir / "spill"),
                "preserve_insertion_order": False,
            }
        )

    def close(self) -> None:
        self.db.close()

    def add_source(self, name: str, batches: Iterable[pa.RecordBatch], columns: list[str]) -> int:
        """Check and stage every batch of one source; returns the rows read."""
        rules = source_rules({c: self.spec.columns[c] for c in columns})
        self.columns[name] = columns
        for rule in rules:
            if rule.name != self.key and rule.column.allowed and len(rule.column.allowed) <= CODE_LIMIT:
                self.codes[rule.name] = value_set(rule.column)
        raw = self.raw[name] = RawRows(self.workdir / f"{name}.raw.arrow")
        writer = None
        try:
            for batch in read_ahead(batches):
                staged = self._staged(batch, rules, raw.rows)
                if writer is None:
                    writer = pq.ParquetWriter(self._staged_path(name), staged.schema, compression="none")
                writer.write_table(staged)
                raw.append(batch)
        finally:
            raw.close()
            if writer is not None:
                writer.close()
        return raw.rows

    def _staged_path(self, name: str) -> Path:
        return self.workdir / f"{name}.staged.parquet"

    def _staged(self, batch: pa.RecordBatch, rules: list[ColumnRules], first_row: int) -> pa.Table:
        checked = check_batch(batch, rules, self.key)
        arrays = {ROW: pa.array(range(first_row, first_row + batch.num_rows), pa.int64())}
        for name, typed in checked.typed.items():
            coded = name in self.codes
            arrays[name] = pc.index_in(typed, self.codes[name]).cast(pa.uint8()) if coded else typed
        arrays[HEAD], arrays[TAIL] = checked.head, checked.tail
        return pa.table(arrays)

    def _source_sql(self, name: str) -> str:
        return f"read_parquet('{self._staged_path(name)}')"

    def assemble(self) -> dict[str, SourceCounts]:
        """Find each source's repeated ids and the ids valid in every source; count what became of rows."""
        key, names = self.key, list(self.columns)
        for i, name in enumerate(names):
            self.db.execute(
                f"CREATE TABLE dup{i} AS SELECT {key} FROM {self._source_sql(name)} "
                f"WHERE {key} IS NOT NULL GROUP BY {key} HAVING count(*) > 1"
            )
            self.db.execute(
                f"CREATE VIEW valid{i} AS SELECT * FROM {self._source_sql(name)} "
                f"WHERE {HEAD} IS NULL AND {TAIL} IS NULL AND {key} NOT IN (SELECT {key} FROM dup{i})"
            )
        ids = " INTERSECT ".join(f"SELECT {key} FROM valid{i}" for i in range(len(names)))
        self.db.execute(f"CREATE TABLE joined AS {ids}")
        joined = self.db.execute("SELECT count(*) FROM joined").fetchone()[0]
        for i, name in enumerate(names):
            read = self.raw[name].rows
            valid = self.db.execute(f"SELECT count(*) FROM valid{i}").fetchone()[0]
            self.counts[name] = SourceCounts(read, read - valid, read - joined, self._top_columns(i, read))
        self.joined = joined
        return self.counts

    def _top_columns(self, i: int, read: int) -> list[tuple[str, int]]:
        """The columns most often first in a quarantined row's reasons, as `value_counts().head(3)`."""
        key = self.key
        first = (
            f"CASE WHEN {HEAD} IS NOT NULL THEN split_part({HEAD}, ': ', 1) "
            f"WHEN {key} IN (SELECT {key} FROM dup{i}) THEN '{key}' ELSE split_part({TAIL}, ': ', 1) END"
        )
        query = f"""
            WITH faults AS (
                SELECT {first} AS col, {ROW} AS pos FROM {self._source_sql(self._name(i))}
                WHERE {HEAD} IS NOT NULL OR {TAIL} IS NOT NULL OR {key} IN (SELECT {key} FROM dup{i})
                UNION ALL
                SELECT '{key}', {read} + {ROW} FROM valid{i} WHERE {key} NOT IN (SELECT {key} FROM joined)
            )
            SELECT col, count(*) AS n FROM faults GROUP BY col ORDER BY n DESC, min(pos) LIMIT 3
        """
        return [(col, n) for col, n in self.db.execute(query).fetchall()]

    def _name(self, i: int) -> str:
        return list(self.columns)[i]

    def partition_batches(self, ds_value: pa.Scalar, batch_rows: int) -> Iterator[pa.RecordBatch]:
        """The joined valid rows sorted by the entity id, typed as the spec declares, with `ds`."""
        key, names = self.key, list(self.columns)
        provider = {}
        for i, name in enumerate(names):
            for column in self.columns[name]:
                provider.setdefault(column, i)
        select = ", ".join(f"v{provider[c]}.{c}" for c in self.spec.columns)
        joins = " ".join(f"JOIN valid{i} v{i} ON v{i}.{key} = v0.{key}" for i in range(1, len(names)))
        query = f"SELECT {select} FROM valid0 v0 {joins} ORDER BY v0.{key}"
        for batch in read_ahead(self.db.sql(query).to_arrow_reader(batch_rows)):
            arrays = [self._decoded(name, batch.column(name)) for name in self.spec.columns]
            arrays.append(pa.repeat(ds_value, batch.num_rows))
            yield pa.RecordBatch.from_arrays(arrays, names=[*self.spec.columns, "ds"])

    def _decoded(self, name: str, values: pa.Array) -> pa.Array:
        if name in self.codes:
            values = self.codes[name].take(values)
        return values.cast(ARROW_TYPES[self.spec.columns[name].type])

    def quarantine_rows(self, name: str) -> Iterator[tuple[int, str | None, str, str]]:
        """Each quarantined row of a source: (row number, raw entity id, reasons, record).

        The rows that failed their own checks first, by row number, then the valid rows with no
        valid partner in another source.
        """
        i, key = list(self.columns).index(name), self.key
        failed = self._cursor(
            f"SELECT {ROW}, {key}, {HEAD}, {key} IN (SELECT {key} FROM dup{i}), {TAIL} "
            f"FROM {self._source_sql(name)} "
            f"WHERE {HEAD} IS NOT NULL OR {TAIL} IS NOT NULL OR {key} IN (SELECT {key} FROM dup{i}) "
            f"ORDER BY {ROW}"
        )
        reasons = {}
        for row, value, head, duplicate, tail in _rows(failed):
            parts = [head, duplicate_reason(key, value) if duplicate else None, tail]
            reasons[row] = "; ".join(p for p in parts if p)
            if len(reasons) >= 10_000:
                yield from self._with_records(name, reasons)
                reasons = {}
        yield from self._with_records(name, reasons)
        others = ", ".join(n for n in self.columns if n != name)
        unmatched = self._cursor(
            f"SELECT {ROW} FROM valid{i} WHERE {key} NOT IN (SELECT {key} FROM joined) ORDER BY {ROW}"
        )
        reason = f"{key}: no valid row in {others} for this id"
        chunk = {}
        for (row,) in _rows(unmatched):
            chunk[row] = reason
            if len(chunk) >= 10_000:
                yield from self._with_records(name, chunk)
                chunk = {}
        yield from self._with_records(name, chunk)

    def _cursor(self, query: str):
        """A cursor of its own that has run `query`, so that its rows stream while others run."""
        cursor = self.db.cursor()
        cursor.execute(query)
        return cursor

    def _with_records(self, name: str, reasons: dict[int, str]) -> Iterator[tuple[int, str | None, str, str]]:
        for row, values in self.raw[name].take(sorted(reasons)):
            entity = values.get(self.key)
            yield row, None if entity is None else str(entity), reasons[row], record_json(values)


def _rows(cursor) -> Iterator[tuple]:
    """A DuckDB cursor's rows, fetched a chunk at a time."""
    while chunk := cursor.fetchmany(10_000):
        yield from chunk
