"""A scored day's rows counted into the reference's buckets (`DriftCounter`), then graded per feature.

The scorer hands the counter each chunk of rows it scores; a day scored in shards has one counter per
shard, handed over as JSON and merged into exactly the day's counts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from include.monitoring.reference import PREDICTION, Reference, check_columns, monitored_features
from include.monitoring.statistics import FeatureDrift, grade_feature, worst_level
from include.usecases.spec import UseCase

logger = logging.getLogger(__name__)


class DriftCounter:
    """A day's rows put into the reference's buckets chunk by chunk, so memory stays flat.

    Its state is counts only: counters of shards of one day (scored apart, handed over with
    `to_dict` / `from_dict`) `merge` into exactly the day's.
    A feature the spec monitors but the reference lacks (added since the champion was trained) is
    skipped with a warning: there is nothing to compare it with.
    """

    def __init__(self, reference: Reference, spec: UseCase) -> None:
        monitored = [name for name, _ in monitored_features(spec)]
        known = {feature.name for feature in reference.features}
        missing = [name for name in monitored if name not in known]
        if missing:
            logger.warning(
                "no drift reference for %s (not features when the model was trained): skipped", missing
            )
        self.spec = spec
        self.reference_rows = reference.rows
        watched = [
            *(name for name in monitored if name in known),
            *([PREDICTION] if PREDICTION in known else []),
        ]
        self.features = [reference.feature(name) for name in watched]
        self.counts = [np.zeros(len(ref.buckets), dtype="int64") for ref in self.features]
        self.rows = 0
        self.seconds = 0.0

    def add(self, frame: pd.DataFrame, predicted: pd.Series | None = None) -> None:
        """Count one chunk of the day's rows, and what the model predicted for them
        (`reference.predicted_values`) when the reference watches the prediction.

        Raises:
            ValueError: when a feature column is missing from the chunk, or the prediction is.
        """
        started = time.perf_counter()
        check_columns(frame, [ref.name for ref in self.features if ref.name != PREDICTION])
        for ref, counts in zip(self.features, self.counts, strict=True):
            if ref.name == PREDICTION:
                if predicted is None:
                    raise ValueError("the reference watches the prediction: pass what the model predicted")
                np.add(counts, ref.count(predicted), out=counts)
            else:
                np.add(counts, ref.count(frame[ref.name]), out=counts)
        self.rows += len(frame)
        self.seconds += time.perf_counter() - started

    def merge(self, other: DriftCounter) -> None:
        """Add the counts of `other`, a counter of another part of the same day on the same reference.

        Raises:
            ValueError: when the two count different features or buckets.
        """
        mine = [(f.name, f.buckets) for f in self.features]
        if mine != [(f.name, f.buckets) for f in other.features]:
            raise ValueError("cannot merge drift counts of different features or buckets")
        for counts, more in zip(self.counts, other.counts, strict=True):
            np.add(counts, more, out=counts)
        self.rows += other.rows
        self.seconds += other.seconds

    def to_dict(self) -> dict[str, Any]:
        """The counts, JSON-able (for XCom): per feature its buckets and rows per bucket."""
        return {
            "rows": self.rows,
            "seconds": self.seconds,
            "features": [
                {"name": ref.name, "buckets": list(ref.buckets), "counts": counts.tolist()}
                for ref, counts in zip(self.features, self.counts, strict=True)
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], reference: Reference, spec: UseCase) -> DriftCounter:
        """The counter `to_dict` described, on the same reference and spec.

        Raises:
            ValueError: when the counts are of other features or buckets than the reference's.
        """
        counter = cls(reference, spec)
        saved = [(f["name"], tuple(f["buckets"])) for f in data["features"]]
        if saved != [(f.name, f.buckets) for f in counter.features]:
            raise ValueError("drift counts of other features or buckets than the reference's")
        counter.counts = [np.array(f["counts"], dtype="int64") for f in data["features"]]
        counter.rows = int(data["rows"])
        counter.seconds = float(data["seconds"])
        return counter

    def drifts(self) -> list[FeatureDrift]:
        """One `FeatureDrift` per feature, in the spec's order, graded by `grade_feature`.

        Raises:
            ValueError: when no rows were counted.
        """
        if not self.rows:
            raise ValueError("cannot measure drift on a day with no rows")
        drifts = [
            grade_feature(ref, counts, ref.rows or self.reference_rows, self.spec.drift, len(self.features))
            for ref, counts in zip(self.features, self.counts, strict=True)
        ]
        flagged = {d.feature: round(d.psi, 3) for d in drifts if d.level != "ok"}
        logger.info(
            "drift of %d rows over %d features in %.2f s: worst %s%s",
            self.rows,
            len(drifts),
            self.seconds,
            worst_level(drifts),
            f", graded beyond noise: {flagged}" if flagged else "",
        )
        return drifts
