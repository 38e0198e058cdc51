"""Batch scoring of one day: the day's rows in Arrow batches, the model, predictions out.

Nothing here holds the whole day: rows are read, checked, predicted and written one batch at a time
(`spec.scoring.batch_rows`), while a `Tally` and a `DriftCounter` keep the day's running counts. The
stages overlap (`read_ahead`): the next batch is read while one is predicted and the one before is
written, so a day takes about as long as its slowest stage, with a few batches in memory. The
predictions replace the day's rows in the `predictions` table in one transaction (the database's
bulk path, see `include.io.bulk`) and go to the lake as `predictions/<use case>/ds=.../`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa
from threadpoolctl import threadpool_limits

from include.io.bulk import read_ahead, replace_partition
from include.io.lake import PART_FILE, PREDICTIONS_ZONE, partition_key
from include.io.stores import ObjectStore
from include.platform.tables import predictions
from include.registry.model_files import FittedModel
from include.usecases.spec import UseCase

log = logging.getLogger(__name__)

HISTOGRAM_BINS = 10
PREDICTION_SCHEMA = pa.schema(
    [
        ("use_case", pa.string()),
        ("ds", pa.date32()),
        ("entity_id", pa.string()),
        ("model_version", pa.int32()),
        ("score", pa.float64()),
        ("predicted_label", pa.int16()),
        ("scored_at", pa.timestamp("us", tz="UTC")),
    ]
)


class ScoreError(ValueError):
    """A day that cannot be scored: no model for it, or nothing in it to score."""


@dataclasses.dataclass
class Tally:
    """The day's counts, built up batch by batch: rows in = rows scored + rows rejected."""

    rows_in: int = 0
    rows_scored: int = 0
    rejected: Counter = dataclasses.field(default_factory=Counter)
    histogram: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(HISTOGRAM_BINS, "int64"))
    score_sum: float = 0.0
    positives: int = 0

    @property
    def rows_rejected(self) -> int:
        return sum(self.rejected.values())

    def add_scores(self, scores: np.ndarray, labels: np.ndarray) -> None:
        self.rows_scored += len(scores)
        self.histogram += np.histogram(scores, bins=HISTOGRAM_BINS, range=(0.0, 1.0))[0]
        self.score_sum += float(scores.sum())
        self.positives += int(labels.sum())

    def to_dict(self) -> dict[str, Any]:
        """The run record's figures (JSON-able)."""
        scored = self.rows_scored
        return {
            "rows_in": self.rows_in,
            "rows_scored": scored,
            "rows_rejected": self.rows_rejected,
            "rejected_reasons": dict(self.rejected),
            "score_mean": self.score_sum / scored if scored else None,
            "positive_rate": self.positives / scored if scored else None,
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
        observe: Callable[[pd.DataFrame], None] = lambda frame: None,
    ) -> Iterator[pa.RecordBatch]:
        """Score each batch's rows; rejected rows are counted by reason, kept rows passed to `observe`.

        Raises:
            ScoreError: at the end, when no row could be scored (so nothing gets written).
        """
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
            observe(frame)
            # The stages already keep both cores busy: BLAS and OpenMP threads would only spin.
            with threadpool_limits(limits=1):
                scores = self.model.predict_proba(frame)
            labels = (scores >= self.threshold).astype("int16")
            tally.add_scores(scores, labels)
            yield self._predictions(entity, scores, labels)
        if not tally.rows_scored:
            raise ScoreError(
                f"{self.spec.name}, ds={self.ds}: no row to score ({tally.rows_in} in, "
                f"rejected: {dict(tally.rejected) or 'none'})"
            )

    def _predictions(self, entity: pa.Array, scores: np.ndarray, labels: np.ndarray) -> pa.RecordBatch:
        rows = len(scores)
        return pa.record_batch(
            [
                pa.repeat(pa.scalar(self.spec.name, pa.string()), rows),
                pa.repeat(pa.scalar(self.ds, pa.date32()), rows),
                entity.cast(pa.string()),
                pa.repeat(pa.scalar(self.version, pa.int32()), rows),
                pa.array(scores, pa.float64()),
                pa.array(labels, pa.int16()),
                pa.repeat(pa.scalar(self.scored_at, pa.timestamp("us", tz="UTC")), rows),
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


@contextlib.contextmanager
def read_partition(
    lake: ObjectStore, key: str, columns: list[str], batch_rows: int
) -> Iterator[Iterator[pa.RecordBatch]]:
    """The batches of one lake partition, only `columns`, streamed from a local copy of the file."""
    with lake.local_path(key) as path:
        parquet = pq.ParquetFile(path)
        missing = [c for c in columns if c not in parquet.schema_arrow.names]
        if missing:
            raise ScoreError(f"{lake.uri(key)}: missing column(s) {missing} the model needs")
        yield parquet.iter_batches(batch_size=batch_rows, columns=columns)


def write_predictions(
    platform: sa.Engine, lake: ObjectStore, use_case: str, ds: dt.date, batches: Iterable[pa.RecordBatch]
) -> tuple[int, str]:
    """Replace the day's predictions in the table (one transaction) and in the lake, streaming.

    Each batch goes to the table's bulk load and to a local Parquet file as it comes; the file is put
    in the lake once the table's transaction has committed. A failure before the commit leaves both
    the table and the lake with the previous predictions; one after it is repaired by a rerun.
    Returns the number of rows written and the lake URI.
    """
    key = partition_key(PREDICTIONS_ZONE, use_case, ds)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / PART_FILE
        with pq.ParquetWriter(path, PREDICTION_SCHEMA, compression="zstd") as parquet:

            def tee() -> Iterator[pa.RecordBatch]:
                # The batches are made (read and predicted) in the background while the table's
                # bulk load sends the ones before.
                for batch in read_ahead(batches):
                    parquet.write_batch(batch)
                    yield batch

            rows = replace_partition(
                platform, predictions, {"use_case": use_case, "ds": ds}, PREDICTION_SCHEMA, tee()
            )
        lake.put_file(key, path)
    return rows, lake.uri(key)
