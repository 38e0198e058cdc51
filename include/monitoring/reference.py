"""The training reference: each monitored feature's buckets and the share of training rows in each.

At training time `build_reference` fixes the buckets from the training rows; the `Reference` travels
with the model in the registry as JSON, and each scored day's rows are counted into the same buckets
(`FeatureReference.count`), so the two share vectors line up.

Buckets:

- numeric: quantile bins of the training values, right-closed ``(a, b]`` like `pandas.cut`, with
  ``-inf`` / ``+inf`` outer edges so every future value has a bin; edges that coincide (a value that
  fills several quantiles) are merged, so a feature can have fewer than `bins` bins. Text is coerced
  with ``pd.to_numeric(errors="coerce")``: a blank or non-number counts as null.
- categorical: every value (as a string) holding at least `min_share` of the training rows, then
  ``__other__``, which holds the rarer training values *and* any value never seen in training (so a
  new category shows up as growth of ``__other__``, where the reference share is near 0).
- boolean: every value seen in training (there are few, and a rare ``Yes`` is worth its own bar),
  then ``__other__`` for anything unseen.
- every kind ends with ``__null__``, the share of missing values.

``__other__`` and ``__null__`` are reserved: a real category spelled that way would be merged. Datetime
features are not monitored: their values move forward every day by design, so their PSI would always
alert without saying anything about the model's inputs.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Literal

import numpy as np
import pandas as pd

from include.usecases.spec import UseCase

logger = logging.getLogger(__name__)

Kind = Literal["numeric", "categorical", "boolean"]

OTHER = "__other__"
NULL = "__null__"
MIN_SHARE = 0.01
# The pseudo-feature under which the model's own output is watched: the binary score, the
# regression value, or the multiclass predicted class, against the training holdout's.
PREDICTION = "(prediction)"


@dataclass(frozen=True)
class FeatureReference:
    """One feature's buckets and the share of training rows in each.

    Attributes:
        name: the feature's column.
        kind: "numeric", "categorical" or "boolean".
        buckets: bucket labels in order; the last is ``__null__``.
        shares: share of training rows per bucket (sums to 1).
        edges: numeric only: ``-inf``, the quantile cuts, ``+inf``; one bin per pair of neighbours.
        rows: the rows the shares come from, when not the training rows (`PREDICTION`: the holdout's).
    """

    name: str
    kind: Kind
    buckets: tuple[str, ...]
    shares: tuple[float, ...]
    edges: tuple[float, ...] = ()
    rows: int | None = None

    def count(self, series: pd.Series) -> np.ndarray:
        """Rows of `series` per bucket, in the order of `buckets`, put where `build_reference` put them."""
        if self.kind == "numeric":
            return _bin_counts(_numbers(series), self.edges)
        return _bucket_counts(series, self.buckets)

    def to_dict(self) -> dict[str, Any]:
        """A strict-JSON dict; the infinite outer edges are written as the strings "-inf" / "inf"."""
        return {
            "name": self.name,
            "kind": self.kind,
            "buckets": list(self.buckets),
            "shares": list(self.shares),
            "edges": [edge if math.isfinite(edge) else str(edge) for edge in self.edges],
            **({"rows": self.rows} if self.rows is not None else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureReference:
        """The inverse of `to_dict`."""
        return cls(
            name=data["name"],
            kind=data["kind"],
            buckets=tuple(data["buckets"]),
            shares=tuple(float(share) for share in data["shares"]),
            edges=tuple(float(edge) for edge in data.get("edges", ())),
            rows=data.get("rows"),
        )


@dataclass(frozen=True)
class Reference:
    """The training rows' distribution of every monitored feature, stored with the model.

    Attributes:
        rows: number of training rows it was built from.
        features: one entry per monitored feature, in the spec's order.
    """

    rows: int
    features: tuple[FeatureReference, ...]

    def with_feature(self, feature: FeatureReference) -> Reference:
        """This reference and `feature` (the model's `PREDICTION`)."""
        return Reference(self.rows, (*self.features, feature))

    def feature(self, name: str) -> FeatureReference:
        """The reference of the feature `name`.

        Raises:
            KeyError: when the feature was not monitored at training time.
        """
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(f"no drift reference for feature {name!r}")

    def to_dict(self) -> dict[str, Any]:
        """A dict that `json.dumps(..., allow_nan=False)` accepts."""
        return {"rows": self.rows, "features": [feature.to_dict() for feature in self.features]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reference:
        """The inverse of `to_dict`."""
        return cls(
            rows=int(data["rows"]),
            features=tuple(FeatureReference.from_dict(item) for item in data["features"]),
        )


def build_reference(
    frame: pd.DataFrame, spec: UseCase, bins: int = 10, min_share: float = MIN_SHARE
) -> Reference:
    """Summarise the training rows' numeric, categorical and boolean features (see the module doc).

    Args:
        frame: the training rows, with the spec's feature columns.
        spec: the use case; its numeric, categorical and boolean features are monitored.
        bins: number of quantile bins per numeric feature (fewer when quantiles coincide).
        min_share: categorical values with a smaller share of rows are merged into ``__other__``.

    Returns:
        The reference, in the order numeric, categorical, boolean features appear in the spec.

    Raises:
        ValueError: on no rows, fewer than two bins, or a feature column missing from `frame`.
    """
    started = time.perf_counter()
    if bins < 2:
        raise ValueError(f"bins must be at least 2, got {bins}")
    if frame.empty:
        raise ValueError("cannot build a drift reference from no rows")
    monitored = monitored_features(spec)
    check_columns(frame, [name for name, _ in monitored])
    rows = len(frame)
    features: list[FeatureReference] = []
    for name, kind in monitored:
        if kind == "numeric":
            features.append(_numeric_reference(name, _numbers(frame[name]), bins))
        else:
            features.append(_categorical_reference(name, kind, frame[name], min_share))
    logger.info(
        "drift reference: %d rows, %d features in %.2f s", rows, len(features), time.perf_counter() - started
    )
    return Reference(rows=rows, features=tuple(features))


def prediction_reference(
    outputs: np.ndarray, classes: Sequence[object] | None, bins: int = 10
) -> FeatureReference:
    """The holdout's model outputs as a reference (`PREDICTION`): the score's or the predicted
    value's quantile bins, or, multiclass, each class's share of the predicted classes."""
    predicted = predicted_values(outputs, classes)
    if classes is None:
        return _numeric_reference(PREDICTION, np.asarray(predicted, dtype="float64"), bins)
    buckets = (*(str(c) for c in classes), OTHER, NULL)
    counts = _bucket_counts(predicted, buckets)
    return FeatureReference(
        PREDICTION, "categorical", buckets, shares_of(counts, len(predicted)), (), len(predicted)
    )


def predicted_values(outputs: np.ndarray, classes: Sequence[object] | None) -> pd.Series:
    """What the prediction drift counts: the score or value, or (multiclass) the predicted class."""
    if classes is None:
        return pd.Series(np.asarray(outputs, dtype="float64"))
    names = np.array([str(c) for c in classes], dtype=object)
    return pd.Series(names[np.asarray(outputs).argmax(axis=1)])


def _numeric_reference(name: str, values: np.ndarray, bins: int) -> FeatureReference:
    finite = values[np.isfinite(values)]
    cuts = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1])) if finite.size else []
    edges = (-math.inf, *(float(cut) for cut in cuts), math.inf)
    counts = _bin_counts(values, edges)
    rows = None if name != PREDICTION else len(values)
    return FeatureReference(name, "numeric", _bin_labels(edges), shares_of(counts, len(values)), edges, rows)


def _categorical_reference(name: str, kind: Kind, series: pd.Series, min_share: float) -> FeatureReference:
    rows = len(series)
    present, nulls = _category_counts(series)
    present = present.sort_index(kind="stable").sort_values(ascending=False, kind="stable")
    kept = present[present >= min_share * rows] if kind == "categorical" else present
    counts = np.array([*kept, present.sum() - kept.sum(), nulls])
    return FeatureReference(name, kind, (*kept.index, OTHER, NULL), shares_of(counts, rows))


def monitored_features(spec: UseCase) -> list[tuple[str, Kind]]:
    """The spec's numeric, categorical and boolean features with their kind, in that order."""
    features = spec.features
    kinds: tuple[tuple[Kind, tuple[str, ...]], ...] = (
        ("numeric", features.numeric),
        ("categorical", features.categorical),
        ("boolean", features.boolean),
    )
    return [(name, kind) for kind, names in kinds for name in names]


def check_columns(frame: pd.DataFrame, names: Iterable[str]) -> None:
    """Raise ValueError naming the feature columns that `frame` lacks."""
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise ValueError(f"feature columns missing from the frame: {missing}")


def shares_of(counts: Sequence[int] | np.ndarray, rows: int) -> tuple[float, ...]:
    """Rows per bucket as shares of `rows`."""
    return tuple(float(count) / rows for count in counts)


def _numbers(series: pd.Series) -> np.ndarray:
    """The column as float64; text that is not a number (such as a blank) becomes NaN."""
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def _bin_counts(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Rows per right-closed bin of `edges`, then the nulls: ``len(edges)`` counts in all."""
    nulls = np.isnan(values)
    bins = np.searchsorted(np.asarray(edges[1:-1]), values[~nulls], side="left")
    return np.append(np.bincount(bins, minlength=len(edges) - 1), nulls.sum())


def _bin_labels(edges: Sequence[float]) -> tuple[str, ...]:
    bins = (f"({low:.6g}, {high:.6g}]" for low, high in pairwise(edges))
    return (*bins, NULL)


def _category_counts(series: pd.Series) -> tuple[pd.Series, int]:
    """Rows per distinct value (as a string), and the number of nulls."""
    counts = series.value_counts(dropna=False, sort=False)
    null = counts.index.isna()
    present = counts[~null]
    present.index = present.index.astype(str)
    return present.groupby(level=0, sort=False).sum().astype("int64"), int(counts[null].sum())


def _bucket_counts(series: pd.Series, buckets: Sequence[str]) -> np.ndarray:
    """Rows per categorical bucket: each value (as a string, as `_category_counts` sees it) in its named
    bucket, else in ``__other__``; nulls in ``__null__``. Only the distinct values are looked up."""
    codes, uniques = pd.factorize(series)
    position = {label: i for i, label in enumerate(buckets[:-2])}
    other, null = len(buckets) - 2, len(buckets) - 1
    labels = pd.Index(uniques).astype(str)
    targets = np.array([*(position.get(label, other) for label in labels), null], dtype="int64")
    return np.bincount(targets[codes], minlength=len(buckets))
