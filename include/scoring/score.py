"""Batch scoring of one day in shards: row groups in Arrow batches, the model, predictions out.

A day's partition is split into `Shard`s, contiguous ranges of its Parquet row groups
(`split_row_groups`, from the footer alone), as many as `shard_count` finds worth a task's start-up.
Ingest sorts a day by entity id, so a shard's rows are also a range of ids (`Shard.lower`/`upper`).
A shard reads only its row groups, by byte range (`read_shard`), and nothing here holds more than a
few batches (`spec.scoring.batch_rows`): rows are read, checked and predicted one batch at a time
while a `Tally` and a `DriftCounter` keep the shard's counts, exact integers that merge into the
day's. Reading and predicting overlap (`read_ahead`). A shard's predictions are staged in the lake
under a key of the run, its index and the shard count (`stage_predictions`), and on PostgreSQL
loaded at the same time into a table of the shard's own (`include.platform.day_swap.load_shard`);
the publish attaches those tables as the day (SQLite: streams the staged files into
`replace_partition`) and puts the staged files in place as the lake's day (`publish_files`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import pairwise
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from threadpoolctl import threadpool_limits

from include.io.bulk import read_ahead
from include.io.lake import PREDICTIONS_ZONE, day_prefix
from include.io.stores import ObjectStore
from include.io.workdir import workdir
from include.monitoring.reference import predicted_values
from include.registry.model_files import FittedModel
from include.usecases.spec import UseCase

log = logging.getLogger(__name__)

HISTOGRAM_BINS = 10
# A score's fixed-point unit in the tally's sum (2**-52: below a double's resolution near 1), and the
# rows per int64 partial sum (2**52 * 2**10 < 2**63).
SCORE_UNITS = 2**52
_SUM_ROWS = 2**10
PREDICTION_SCHEMA = pa.schema(
    [
        ("use_case", pa.string()),
        ("ds", pa.date32()),
        ("entity_id", pa.string()),
        ("model_version", pa.int32()),
        ("score", pa.float64()),
        ("predicted_label", pa.int16()),
        ("scored_at", pa.timestamp("us", tz="UTC")),
        ("predicted_class", pa.string()),
        ("class_probabilities", pa.string()),
    ]
)
# A regression tally's unit (2**-20: a millionth): values up to about 8e12 sum exactly.
VALUE_UNITS = 2**20


class ScoreError(ValueError):
    """A day that cannot be scored: no model for it, or nothing in it to score."""


@dataclasses.dataclass
class Tally:
    """A day's (or a shard's) counts, built up batch by batch: rows in = rows scored + rows rejected.

    Every figure is an integer, the score sum too (in units of `1 / SCORE_UNITS`), so the tallies of a
    day's shards `merge` into exactly the tally one pass over the day gives, in any order.
    """

    rows_in: int = 0
    rows_scored: int = 0
    rejected: Counter = dataclasses.field(default_factory=Counter)
    histogram: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(HISTOGRAM_BINS, "int64"))
    score_units: int = 0
    positives: int = 0
    # What one unit of `score_units` is worth: 1 / SCORE_UNITS for probabilities, 1 / VALUE_UNITS
    # for a regression's predicted values (which have no histogram nor positives).
    unit: int = SCORE_UNITS

    @property
    def rows_rejected(self) -> int:
        return sum(self.rejected.values())

    def add_scores(self, scores: np.ndarray, labels: np.ndarray | None) -> None:
        """Count a batch's scores; `labels` None: a regression's predicted values."""
        self.rows_scored += len(scores)
        if labels is None:
            self.unit = VALUE_UNITS
            # Any size: each value's units as a Python integer (no int64 partial sum to overflow).
            self.score_units += sum(np.rint(scores * VALUE_UNITS).astype("int64").tolist())
            return
        self.histogram += np.histogram(scores, bins=HISTOGRAM_BINS, range=(0.0, 1.0))[0]
        units = np.rint(scores * SCORE_UNITS).astype("int64")
        # Partial sums of `_SUM_ROWS` rows fit in int64; Python's integers add them without a bound.
        self.score_units += sum(np.add.reduceat(units, np.arange(0, len(units), _SUM_ROWS)).tolist())
        self.positives += int(labels.sum())

    def merge(self, other: Tally) -> None:
        """Add the counts of `other`, the tally of another part of the same day."""
        self.rows_in += other.rows_in
        self.rows_scored += other.rows_scored
        self.rejected.update(other.rejected)
        self.histogram += other.histogram
        self.score_units += other.score_units
        self.positives += other.positives
        if other.rows_scored:
            self.unit = other.unit

    def to_dict(self) -> dict[str, Any]:
        """The counts, JSON-able for XCom (the score sum as text: it outgrows a 64-bit integer)."""
        return {
            "rows_in": self.rows_in,
            "rows_scored": self.rows_scored,
            "rejected": dict(self.rejected),
            "histogram": self.histogram.tolist(),
            "score_units": str(self.score_units),
            "positives": self.positives,
            "unit": self.unit,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Tally:
        """The inverse of `to_dict`."""
        return cls(
            rows_in=data["rows_in"],
            rows_scored=data["rows_scored"],
            rejected=Counter(data["rejected"]),
            histogram=np.array(data["histogram"], dtype="int64"),
            score_units=int(data["score_units"]),
            positives=data["positives"],
            unit=data.get("unit", SCORE_UNITS),
        )

    def figures(self) -> dict[str, Any]:
        """The run record's figures (JSON-able)."""
        scored = self.rows_scored
        return {
            "rows_in": self.rows_in,
            "rows_scored": scored,
            "rows_rejected": self.rows_rejected,
            "rejected_reasons": dict(self.rejected),
            "score_mean": self.score_units / (self.unit * scored) if scored else None,
            "positive_rate": self.positives / scored if scored and self.unit == SCORE_UNITS else None,
            "score_histogram": self.histogram.tolist(),
        }


@dataclasses.dataclass(frozen=True)
class Scorer:
    """A loaded model version and what its predictions are stamped with."""

    spec: UseCase
    model: FittedModel
    version: int
    threshold: float
    ds: dt.date
    scored_at: dt.datetime

    def rejections(self, frame: pd.DataFrame) -> pd.Series:
        """Why each row cannot be scored (its reason), or NA for a row that can."""
        entity = frame[self.spec.entity_id]
        features = list(self.spec.features.all)
        reasons = pd.Series(pd.NA, index=frame.index, dtype="object")
        reasons[frame[features].isna().all(axis=1)] = "every feature is missing"
        reasons[entity.isna() | (entity.astype("str").str.strip() == "")] = (
            f"{self.spec.entity_id} is missing"
        )
        return reasons

    def predict(
        self,
        batches: Iterable[pa.RecordBatch],
        tally: Tally,
        observe: Callable[[pd.DataFrame, pd.Series], None] = lambda frame, predicted: None,
    ) -> Iterator[pa.RecordBatch]:
        """Score each batch's rows; rejected rows are counted by reason, kept rows passed to `observe`
        with what the model predicted for them (`include.monitoring.reference.predicted_values`)."""
        for batch in read_ahead(batches):
            frame = to_frame(batch, self.spec.entity_id)
            tally.rows_in += len(frame)
            reasons = self.rejections(frame)
            rejected = reasons.notna()
            entity = batch.column(self.spec.entity_id)
            if rejected.any():
                tally.rejected.update(reasons[rejected].tolist())
                frame, entity = frame[~rejected], entity.filter(pa.array(~rejected.to_numpy()))
            if frame.empty:
                continue
            # The stages already keep both cores busy: BLAS and OpenMP threads would only spin.
            with threadpool_limits(limits=1):
                outputs = self.model.outputs(frame)
            observe(frame, predicted_values(outputs, self.model.classes))
            yield self._predictions(entity, outputs, tally)

    def _predictions(self, entity: pa.Array, outputs: np.ndarray, tally: Tally) -> pa.RecordBatch:
        """A batch's prediction rows, per task (module `PREDICTION_SCHEMA`), counted in `tally`."""
        rows = len(outputs)
        classes = pa.nulls(rows, pa.string())
        probabilities = pa.nulls(rows, pa.string())
        if self.model.task == "regression":
            scores, labels = outputs, None
        elif self.model.task == "multiclass":
            labels = outputs.argmax(axis=1).astype("int16")
            scores = outputs[np.arange(rows), labels]
            names = np.array([str(c) for c in self.model.classes or ()], dtype=object)
            classes = pa.array(names[labels], pa.string())
            probabilities = pa.array([json.dumps(row) for row in np.round(outputs, 12).tolist()], pa.string())
        else:
            scores, labels = outputs, (outputs >= self.threshold).astype("int16")
        tally.add_scores(scores, labels)
        return pa.record_batch(
            [
                pa.repeat(pa.scalar(self.spec.name, pa.string()), rows),
                pa.repeat(pa.scalar(self.ds, pa.date32()), rows),
                entity.cast(pa.string()),
                pa.repeat(pa.scalar(self.version, pa.int32()), rows),
                pa.array(scores, pa.float64()),
                pa.nulls(rows, pa.int16()) if labels is None else pa.array(labels, pa.int16()),
                pa.repeat(pa.scalar(self.scored_at, pa.timestamp("us", tz="UTC")), rows),
                classes,
                probabilities,
            ],
            schema=PREDICTION_SCHEMA,
        )


def to_frame(batch: pa.RecordBatch, entity_id: str) -> pd.DataFrame:
    """The batch as a frame, its text columns other than `entity_id` as categoricals.

    A day's text features hold a few distinct values each: as categoricals they are counted for drift
    and reach the model's encoders (which want object arrays) without a Python string per value.
    """
    columns = [
        pc.dictionary_encode(column)
        if name != entity_id and (pa.types.is_string(column.type) or pa.types.is_large_string(column.type))
        else column
        for name, column in zip(batch.schema.names, batch.columns, strict=True)
    ]
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names).to_pandas()


@dataclasses.dataclass(frozen=True)
class Shard:
    """A contiguous range of row groups of a day's partition, scored by one task.

    Attributes:
        index: from 0.
        count: the number of shards of the day.
        first_group: the first row group it reads.
        end_group: one past the last.
        rows: the rows of its row groups.
        partition_rows: the rows of the whole partition when it was planned.
        key: where its predictions are staged in the lake (`include.io.lake.shard_key`).
        lower: its smallest entity id, None for the first shard (no lower bound).
        upper: the next shard's smallest entity id, None for the last (no upper bound).
    """

    index: int
    count: int
    first_group: int
    end_group: int
    rows: int
    partition_rows: int
    key: str
    lower: str | None = None
    upper: str | None = None

    @property
    def label(self) -> str:
        return f"shard {self.index + 1} of {self.count}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Shard:
        return cls(**data)


def split_row_groups(group_rows: Sequence[int], shard_rows: int) -> list[tuple[int, int]]:
    """Contiguous ranges `[first, end)` of row groups, about `shard_rows` rows each.

    As many shards as `shard_rows` asks for (at least one), never more than there are row groups;
    each range ends at the first row-group boundary that reaches its share of the rows.
    """
    total, groups = sum(group_rows), len(group_rows)
    count = max(1, min(math.ceil(total / shard_rows), groups))
    cumulative = np.cumsum(group_rows)
    ends = []
    for k in range(1, count):
        reaches = int(np.searchsorted(cumulative, total * k / count, side="left")) + 1
        # Every shard keeps at least one row group, before and after this boundary.
        ends.append(min(max(reaches, (ends[-1] if ends else 0) + 1), groups - (count - k)))
    bounds = [0, *ends, groups]
    return list(pairwise(bounds))


# A shard's start-up (its task's process, imports, connections) is kept under this share of its time.
MAX_STARTUP_SHARE = 0.1


@dataclasses.dataclass(frozen=True)
class ShardCosts:
    """What a shard task costs: seconds from its process's start to its first row, and rows/s after."""

    startup_s: float = 2.0
    rows_per_s: float = 150_000.0


def shard_count(rows: int, groups: int, workers: int, costs: ShardCosts, smallest_rows: int) -> int:
    """How many shards to score a day of `rows` rows in `groups` row groups on `workers` workers.

    One per worker (their start-ups overlap), and more only in whole rounds of the workers, as long
    as each shard keeps its start-up (`costs`) within `MAX_STARTUP_SHARE` of its time; never a shard
    under `smallest_rows` rows (the spec's `scoring.shard_rows`), nor more shards than row groups.
    """
    share = MAX_STARTUP_SHARE
    worth = max(1.0, costs.startup_s * costs.rows_per_s * (1 - share) / share)
    rounds = max(1, int(rows // (workers * worth)))
    return max(1, min(workers * rounds, rows // smallest_rows, groups))


def partition_row_groups(
    lake: ObjectStore, key: str, columns: list[str]
) -> tuple[list[int], list[str] | None]:
    """The rows of each row group of a partition and, when the partition is sorted by its entity id
    (`columns[0]`), each row group's smallest id (else None); from its footer alone (no data read).

    Raises:
        ScoreError: naming the partition and the columns the model needs that it lacks.
    """
    with lake.open(key) as file:
        metadata = pq.read_metadata(file)
    _check_columns(lake, key, metadata.schema.to_arrow_schema(), columns)
    groups = [metadata.row_group(i) for i in range(metadata.num_row_groups)]
    return [group.num_rows for group in groups], _sorted_starts(groups, columns[0])


def _sorted_starts(groups: list[Any], column: str) -> list[str] | None:
    """Each row group's smallest value of `column`, if its statistics show the groups in ascending,
    disjoint order (exact values, no nulls); else None."""
    bounds = []
    for group in groups:
        [stats] = [
            group.column(i).statistics
            for i in range(group.num_columns)
            if group.column(i).path_in_schema == column
        ]
        if stats is None or not stats.has_min_max or stats.null_count or not _exact(stats):
            return None
        bounds.append((stats.min, stats.max))
    if any(high >= low for (_, high), (low, _) in pairwise(bounds)):
        return None
    return [low for low, _ in bounds]


def _exact(stats: Any) -> bool:
    return getattr(stats, "is_min_value_exact", True) and getattr(stats, "is_max_value_exact", True)


def plan_day(
    group_rows: list[int], starts: list[str] | None, count: int, key_of: Callable[[int, int], str]
) -> list[Shard]:
    """The day's `count` shards (one when the partition is not sorted by id: a range of row groups is
    then no range of ids), each with its staging key `key_of(index, count)` and its range of ids."""
    if starts is None and count > 1:
        log.warning("the partition is not sorted by entity id: scoring it as one shard, not %d", count)
        count = 1
    ranges = split_row_groups(group_rows, -(-sum(group_rows) // count))
    return [
        Shard(
            index=index,
            count=len(ranges),
            first_group=first,
            end_group=end,
            rows=sum(group_rows[first:end]),
            partition_rows=sum(group_rows),
            key=key_of(index, len(ranges)),
            lower=starts[first] if starts and index else None,
            upper=starts[end] if starts and end < len(group_rows) else None,
        )
        for index, (first, end) in enumerate(ranges)
    ]


@contextlib.contextmanager
def read_shard(
    lake: ObjectStore, key: str, shard: Shard, columns: list[str], batch_rows: int
) -> Iterator[Iterator[pa.RecordBatch]]:
    """The batches of the shard's row groups, only `columns`, read by byte range (no other rows).

    Each row group is cut into batches on its own, so a row's batch is the same whatever the shards.

    Raises:
        ScoreError: when the partition lacks a column, or changed since the shards were planned.
    """
    with lake.open(key) as file:
        parquet = pq.ParquetFile(file)
        _check_columns(lake, key, parquet.schema_arrow, columns)
        metadata = parquet.metadata
        groups = range(shard.first_group, shard.end_group)
        rows = sum(metadata.row_group(g).num_rows for g in groups if g < metadata.num_row_groups)
        if (metadata.num_rows, rows) != (shard.partition_rows, shard.rows):
            raise ScoreError(
                f"{lake.uri(key)} changed since the run planned its shards ({metadata.num_rows} rows, "
                f"{shard.label} {rows}; planned {shard.partition_rows} and {shard.rows}): rerun the run"
            )
        yield (
            batch
            for group in groups
            for batch in parquet.iter_batches(batch_size=batch_rows, row_groups=[group], columns=columns)
        )


def _check_columns(lake: ObjectStore, key: str, schema: pa.Schema, columns: list[str]) -> None:
    missing = [c for c in columns if c not in schema.names]
    if missing:
        raise ScoreError(f"{lake.uri(key)}: missing column(s) {missing} the model needs")


def _count(batches: Iterable[pa.RecordBatch]) -> int:
    return sum(batch.num_rows for batch in batches)


def stage_predictions(
    lake: ObjectStore,
    key: str,
    batches: Iterable[pa.RecordBatch],
    load: Callable[[Iterator[pa.RecordBatch]], int] = _count,
) -> int:
    """Write a shard's predictions to its staging object, batch by batch, put in place whole, and
    hand each batch on to `load` as it comes (on PostgreSQL: `day_swap.load_shard`, into the
    shard's table), which returns the rows it took.

    A retry or a second run of the shard replaces the same object. Returns the rows written.
    """
    with workdir("shard") as tmp:
        path = tmp / Path(key).name
        with pq.ParquetWriter(path, PREDICTION_SCHEMA, compression="zstd") as parquet:

            def tee() -> Iterator[pa.RecordBatch]:
                for batch in batches:
                    parquet.write_batch(batch)
                    yield batch

            # The batches are predicted in the background while `load` sends the ones before.
            rows = load(read_ahead(tee()))
        lake.put_file(key, path)
    return rows


def publish_files(lake: ObjectStore, keys: Sequence[str], use_case: str, ds: dt.date) -> str:
    """Put the staged files `keys` in place as the lake's day (`predictions/<use case>/ds=.../`,
    under their own names) and remove the day's other files; the day's URI.

    After the table's commit: a failure before it leaves the lake's day as it was, one after it is
    repaired by a rerun.
    """
    prefix = day_prefix(PREDICTIONS_ZONE, use_case, ds)
    placed = [prefix + PurePosixPath(key).name for key in keys]
    for key, target in zip(keys, placed, strict=True):
        with lake.local_path(key) as path:
            lake.put_file(target, path)
    for stale in set(lake.list_keys(prefix)) - set(placed):
        lake.delete(stale)
    return lake.uri(prefix)


def read_staged(lake: ObjectStore, keys: Iterable[str], batch_rows: int) -> Iterator[pa.RecordBatch]:
    """The staged predictions of `keys`, in that order, streamed in batches of `batch_rows`."""
    for key in keys:
        with lake.open(key) as file:
            yield from pq.ParquetFile(file).iter_batches(batch_size=batch_rows)
