"""Per-feature drift of a scored day against the champion's training reference, as pure functions.

At training time `build_reference` summarises each feature of the training rows as shares of rows per
bucket; the `Reference` travels with the model in the registry as JSON. For each scored day a
`DriftCounter` puts the day's rows into the same buckets, chunk by chunk, and compares the two share
vectors with the population stability index (`psi`).

A PSI measured on a sample is never 0: at 80 rows a day, sampling noise alone gives a PSI above the
usual 0.1 "warn" on most days. So a feature is graded only when its PSI exceeds `noise_psi`, the PSI
that noise reaches at the day's row count: the ``1 - drift.false_alarm_rate / features`` quantile of
the PSI between two samples drawn from the reference shares, one of the reference's rows and one of
the day's (the reference is a sample too), from seeded multinomial draws. Split over the features
(Bonferroni), a day drawn from the training distribution gets any `warn` with a chance of at most
`false_alarm_rate`. An `alert` (which asks for a retrain) needs the stricter `false_alert_rate`
quantile. The spec's `drift.psi_warn` / `drift.psi_alert` are the sizes worth a word beyond the noise:
a feature warns when its PSI is beyond the noise and at least `psi_warn`, and alerts when it is
beyond the stricter noise quantile and at least `psi_alert`.
`should_retrain` turns the day's worst level into a retrain decision that respects a cooldown.

Buckets, fixed when the reference is built so that both share vectors line up:

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

import datetime as dt
import logging
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from typing import Any, Literal

import numpy as np
import pandas as pd

from include.usecases.spec import UseCase

logger = logging.getLogger(__name__)

Kind = Literal["numeric", "categorical", "boolean"]
Level = Literal["ok", "warn", "alert"]

OTHER = "__other__"
NULL = "__null__"
MIN_SHARE = 0.01
EPSILON = 1e-4
LEVELS: tuple[Level, ...] = ("ok", "warn", "alert")
# Multinomial draws behind each noise quantile: beyond the alert quantile (1 - 0.005 / 19) lie ~13.
NOISE_DRAWS = 50_000
NOISE_SEED = 20_251


@dataclass(frozen=True)
class FeatureReference:
    """One feature's buckets and the share of training rows in each.

    Attributes:
        name: the feature's column.
        kind: "numeric", "categorical" or "boolean".
        buckets: bucket labels in order; the last is ``__null__``.
        shares: share of training rows per bucket (sums to 1).
        edges: numeric only: ``-inf``, the quantile cuts, ``+inf``; one bin per pair of neighbours.
    """

    name: str
    kind: Kind
    buckets: tuple[str, ...]
    shares: tuple[float, ...]
    edges: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A strict-JSON dict; the infinite outer edges are written as the strings "-inf" / "inf"."""
        return {
            "name": self.name,
            "kind": self.kind,
            "buckets": list(self.buckets),
            "shares": list(self.shares),
            "edges": [edge if math.isfinite(edge) else str(edge) for edge in self.edges],
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


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's drift on one scored day.

    Attributes:
        feature: the feature's column.
        kind: "numeric", "categorical" or "boolean".
        psi: population stability index of the day against the reference.
        psi_noise: the PSI that sampling noise reaches at the day's rows (see `noise_psi`); the
            feature is graded only beyond it.
        level: "ok" up to the noise, else "warn" or "alert" against the spec's thresholds.
        buckets: bucket labels, as in the reference.
        reference_shares: share of training rows per bucket.
        actual_shares: share of the day's rows per bucket.
        rows: number of rows scored that day.
    """

    feature: str
    kind: Kind
    psi: float
    psi_noise: float
    level: Level
    buckets: tuple[str, ...]
    reference_shares: tuple[float, ...]
    actual_shares: tuple[float, ...]
    rows: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict, for the drift table and the UI's per-feature bars."""
        return {
            "feature": self.feature,
            "kind": self.kind,
            "psi": self.psi,
            "psi_noise": self.psi_noise,
            "level": self.level,
            "buckets": list(self.buckets),
            "reference_shares": list(self.reference_shares),
            "actual_shares": list(self.actual_shares),
            "rows": self.rows,
        }


def psi(
    expected_shares: Sequence[float] | np.ndarray,
    actual_shares: Sequence[float] | np.ndarray,
    epsilon: float = EPSILON,
) -> float:
    """Population stability index of two share vectors over the same buckets.

    ``PSI = sum_i (a_i - e_i) * ln(a_i / e_i)`` with ``e_i = max(expected_i, epsilon)`` and
    ``a_i = max(actual_i, epsilon)``. The floor keeps an empty bucket finite (a bucket empty on one side
    and holding share ``s`` on the other adds about ``s * ln(s / epsilon)``). Every term is >= 0, since
    ``a - e`` and ``ln(a / e)`` share their sign, and swapping the two vectors gives the same value.
    Rule of thumb: below 0.1 stable, 0.1 to 0.25 a moderate shift, above 0.25 a major one.

    Args:
        expected_shares: the reference's share per bucket.
        actual_shares: the day's share per bucket, in the same order.
        epsilon: floor applied to every share before the logarithm.

    Returns:
        The index, a finite float >= 0.

    Raises:
        ValueError: when the vectors differ in length or are not one-dimensional.
    """
    expected = np.asarray(expected_shares, dtype="float64")
    actual = np.asarray(actual_shares, dtype="float64")
    if expected.ndim != 1 or expected.shape != actual.shape:
        raise ValueError(
            f"share vectors must be 1-D and equal in length, got {expected.shape} and {actual.shape}"
        )
    expected = np.maximum(expected, epsilon)
    actual = np.maximum(actual, epsilon)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def noise_psi(shares: Sequence[float], reference_rows: int, rows: int, quantile: float) -> float:
    """The `quantile` of the PSI that sampling noise alone gives between a reference and a day.

    Both sides are drawn from the same shares: `reference_rows` rows for the reference (built from a
    sample itself) and `rows` for the day, `NOISE_DRAWS` times from a fixed seed, so the same inputs
    give the same threshold; the PSI is computed as `psi` computes it (with its floor).

    Args:
        shares: the reference's share per bucket.
        reference_rows: the number of rows the reference was built from.
        rows: the number of rows of the day.
        quantile: in (0, 1); for example ``1 - 0.05 / features``.

    Raises:
        ValueError: on a row count below 1 or a quantile outside (0, 1).
    """
    if reference_rows < 1 or rows < 1:
        raise ValueError(f"row counts must be >= 1, got reference_rows={reference_rows}, rows={rows}")
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    # "higher": the threshold is a PSI the draws reach, so "beyond it" keeps its chance under 1 - quantile
    # even where the PSI takes few values (a boolean at 80 rows).
    draws = _noise_draws(tuple(shares), reference_rows, rows)
    return float(np.quantile(draws, quantile, method="higher"))


@lru_cache(maxsize=64)
def _noise_draws(shares: tuple[float, ...], reference_rows: int, rows: int) -> np.ndarray:
    """`NOISE_DRAWS` PSIs of two multinomial samples of `shares` (cached: a day asks twice per feature)."""
    rng = np.random.default_rng(NOISE_SEED)
    p = np.asarray(shares, dtype="float64")
    p = p / p.sum()
    expected = np.maximum(rng.multinomial(reference_rows, p, size=NOISE_DRAWS) / reference_rows, EPSILON)
    actual = np.maximum(rng.multinomial(rows, p, size=NOISE_DRAWS) / rows, EPSILON)
    return np.sum((actual - expected) * np.log(actual / expected), axis=1)


def level_of(value: float, psi_warn: float, psi_alert: float) -> Level:
    """The level of a PSI: "alert" if ``value >= psi_alert``, else "warn" if ``>= psi_warn``, else "ok"."""
    if value >= psi_alert:
        return "alert"
    return "warn" if value >= psi_warn else "ok"


def worst_level(drifts: Iterable[FeatureDrift]) -> Level:
    """The most severe level among `drifts` ("ok" when there are none)."""
    return max((drift.level for drift in drifts), key=LEVELS.index, default="ok")


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
    monitored = _monitored(spec)
    _check_frame(frame, monitored)
    rows = len(frame)
    features: list[FeatureReference] = []
    for name, kind in monitored:
        if kind == "numeric":
            values = _numbers(frame[name])
            finite = values[np.isfinite(values)]
            cuts = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1])) if finite.size else []
            edges = (-math.inf, *(float(cut) for cut in cuts), math.inf)
            counts = _bin_counts(values, edges)
            buckets = _bin_labels(edges)
        else:
            present, nulls = _category_counts(frame[name])
            present = present.sort_index(kind="stable").sort_values(ascending=False, kind="stable")
            kept = present[present >= min_share * rows] if kind == "categorical" else present
            counts = np.array([*kept, present.sum() - kept.sum(), nulls])
            buckets = (*kept.index, OTHER, NULL)
            edges = ()
        features.append(FeatureReference(name, kind, tuple(buckets), _shares(counts, rows), edges))
    logger.info(
        "drift reference: %d rows, %d features in %.2f s", rows, len(features), time.perf_counter() - started
    )
    return Reference(rows=rows, features=tuple(features))


class DriftCounter:
    """A day's rows put into the reference's buckets chunk by chunk, so memory stays flat.

    Its state is counts only: counters of shards of one day (scored apart, handed over with
    `to_dict` / `from_dict`) `merge` into exactly the day's.
    A feature the spec monitors but the reference lacks (added since the champion was trained) is
    skipped with a warning: there is nothing to compare it with.
    """

    def __init__(self, reference: Reference, spec: UseCase) -> None:
        monitored = [name for name, _ in _monitored(spec)]
        known = {feature.name for feature in reference.features}
        missing = [name for name in monitored if name not in known]
        if missing:
            logger.warning(
                "no drift reference for %s (not features when the model was trained): skipped", missing
            )
        self.spec = spec
        self.reference_rows = reference.rows
        self.features = [reference.feature(name) for name in monitored if name in known]
        self.counts = [np.zeros(len(ref.buckets), dtype="int64") for ref in self.features]
        self.rows = 0
        self.seconds = 0.0

    def add(self, frame: pd.DataFrame) -> None:
        """Count one chunk of the day's rows.

        Raises:
            ValueError: when a feature column is missing from the chunk.
        """
        started = time.perf_counter()
        _check_frame(frame, [(feature.name, feature.kind) for feature in self.features])
        for ref, counts in zip(self.features, self.counts, strict=True):
            if ref.kind == "numeric":
                chunk = _bin_counts(_numbers(frame[ref.name]), ref.edges)
            else:
                chunk = _bucket_counts(frame[ref.name], ref.buckets)
            np.add(counts, chunk, out=counts)
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
        """One `FeatureDrift` per feature, in the spec's order, graded beyond the noise (module doc).

        Raises:
            ValueError: when no rows were counted.
        """
        if not self.rows:
            raise ValueError("cannot measure drift on a day with no rows")
        drift = self.spec.drift
        features = max(len(self.features), 1)
        warn_quantile = 1 - drift.false_alarm_rate / features
        alert_quantile = 1 - drift.false_alert_rate / features
        drifts = []
        for ref, counts in zip(self.features, self.counts, strict=True):
            actual = _shares(counts, self.rows)
            value = psi(ref.shares, actual)
            noise = noise_psi(ref.shares, self.reference_rows, self.rows, warn_quantile)
            level: Level = "ok"
            if value > noise and value >= drift.psi_warn:
                strict = noise_psi(ref.shares, self.reference_rows, self.rows, alert_quantile)
                level = "alert" if value > strict and value >= drift.psi_alert else "warn"
            drifts.append(
                FeatureDrift(
                    ref.name, ref.kind, value, noise, level, ref.buckets, ref.shares, actual, self.rows
                )
            )
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


def should_retrain(
    levels_by_day: Mapping[dt.date, str],
    today: dt.date,
    last_retrain_trigger: dt.date | None,
    cooldown_days: int,
) -> bool:
    """Whether today's drift should trigger a retrain.

    True exactly when ``levels_by_day[today] == "alert"`` and no trigger blocks today. A trigger on
    day ``D`` blocks days ``D .. D + cooldown_days - 1``, so ``D + cooldown_days`` may trigger again
    (with 7: a Monday trigger allows the next one on the following Monday; with 0 nothing is blocked).
    A trigger later than `today` also blocks it, so a backfill of an older day never retrains behind
    a newer trigger. A day with no entry in `levels_by_day` (not measured) does not trigger.

    Args:
        levels_by_day: the worst drift level of each scored day.
        today: the day being scored.
        last_retrain_trigger: the day of the last trigger, or None when there has been none.
        cooldown_days: the spec's ``drift.cooldown_days`` (>= 0).

    Raises:
        ValueError: on a negative cooldown or an unknown level for today.
    """
    if cooldown_days < 0:
        raise ValueError(f"cooldown_days must be >= 0, got {cooldown_days}")
    level = levels_by_day.get(today, "ok")
    if level not in LEVELS:
        raise ValueError(f"unknown drift level {level!r} on {today}; expected one of {LEVELS}")
    if level != "alert":
        return False
    if last_retrain_trigger is None:
        return True
    elapsed = (today - last_retrain_trigger).days
    return elapsed >= 0 and elapsed >= cooldown_days


def _monitored(spec: UseCase) -> list[tuple[str, Kind]]:
    features = spec.features
    kinds: tuple[tuple[Kind, tuple[str, ...]], ...] = (
        ("numeric", features.numeric),
        ("categorical", features.categorical),
        ("boolean", features.boolean),
    )
    return [(name, kind) for kind, names in kinds for name in names]


def _check_frame(frame: pd.DataFrame, features: Iterable[tuple[str, Kind]]) -> None:
    missing = [name for name, _ in features if name not in frame.columns]
    if missing:
        raise ValueError(f"feature columns missing from the frame: {missing}")


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


def _shares(counts: np.ndarray, rows: int) -> tuple[float, ...]:
    return tuple(float(count) / rows for count in counts)
