"""The statistics of drift: the population stability index (`psi`), the PSI sampling noise reaches
(`noise_psi`), and the grade of a feature's drift beyond that noise (`grade_feature`).

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
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import numpy as np

from include.monitoring.reference import FeatureReference, Kind, shares_of
from include.usecases.spec import Drift

Level = Literal["ok", "warn", "alert"]

LEVELS: tuple[Level, ...] = ("ok", "warn", "alert")
EPSILON = 1e-4
# Multinomial draws behind each noise quantile: beyond the alert quantile (1 - 0.005 / 19) lie ~13.
NOISE_DRAWS = 50_000
NOISE_SEED = 20_251


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
) -> float | np.ndarray:
    """Population stability index of two share vectors over the same buckets, or of each pair of rows
    of two stacks of them (buckets on the last axis), as the noise draws compare them.

    ``PSI = sum_i (a_i - e_i) * ln(a_i / e_i)`` with ``e_i = max(expected_i, epsilon)`` and
    ``a_i = max(actual_i, epsilon)``. The floor keeps an empty bucket finite (a bucket empty on one side
    and holding share ``s`` on the other adds about ``s * ln(s / epsilon)``). Every term is >= 0, since
    ``a - e`` and ``ln(a / e)`` share their sign, and swapping the two vectors gives the same value.
    Rule of thumb: below 0.1 stable, 0.1 to 0.25 a moderate shift, above 0.25 a major one.

    Args:
        expected_shares: the reference's share per bucket.
        actual_shares: the day's share per bucket, in the same order (and shape).
        epsilon: floor applied to every share before the logarithm.

    Returns:
        The index, a finite float >= 0; for stacks, an array of one index per pair of rows.

    Raises:
        ValueError: when the two differ in shape or are scalars.
    """
    expected = np.asarray(expected_shares, dtype="float64")
    actual = np.asarray(actual_shares, dtype="float64")
    if expected.ndim == 0 or expected.shape != actual.shape:
        raise ValueError(
            f"share vectors must be equal in length (stacks equal in shape), "
            f"got {expected.shape} and {actual.shape}"
        )
    expected = np.maximum(expected, epsilon)
    actual = np.maximum(actual, epsilon)
    index = np.sum((actual - expected) * np.log(actual / expected), axis=-1)
    return float(index) if index.ndim == 0 else index


def noise_psi(shares: Sequence[float], reference_rows: int, rows: int, quantile: float) -> float:
    """The `quantile` of the PSI that sampling noise alone gives between a reference and a day.

    Both sides are drawn from the same shares: `reference_rows` rows for the reference (built from a
    sample itself) and `rows` for the day, `NOISE_DRAWS` times from a fixed seed, so the same inputs
    give the same threshold; each draw's PSI is `psi`'s (with its floor).

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
    expected = rng.multinomial(reference_rows, p, size=NOISE_DRAWS) / reference_rows
    actual = rng.multinomial(rows, p, size=NOISE_DRAWS) / rows
    return psi(expected, actual)


def grade_feature(
    reference: FeatureReference, counts: np.ndarray, reference_rows: int, drift: Drift, features: int
) -> FeatureDrift:
    """One feature's drift on a day: the PSI of its counts against the reference, graded beyond the noise.

    "ok" unless the PSI is beyond `noise_psi` at the ``1 - drift.false_alarm_rate / features`` quantile
    and at least ``drift.psi_warn``; then "alert" if it is also beyond the
    ``1 - drift.false_alert_rate / features`` quantile and at least ``drift.psi_alert``, else "warn".

    Args:
        reference: the feature's buckets and training shares.
        counts: the day's rows per bucket, in the reference's order.
        reference_rows: the number of rows the reference was built from.
        drift: the spec's drift settings.
        features: the number of features graded that day, over which the false-alarm rates are split.

    Raises:
        ValueError: when `counts` hold no rows.
    """
    rows = int(np.sum(counts))
    if rows < 1:
        raise ValueError(f"cannot grade the drift of {reference.name!r} on no rows")
    actual = shares_of(counts, rows)
    value = float(psi(reference.shares, actual))
    noise = noise_psi(reference.shares, reference_rows, rows, 1 - drift.false_alarm_rate / features)
    level: Level = "ok"
    if value > noise and value >= drift.psi_warn:
        strict = noise_psi(reference.shares, reference_rows, rows, 1 - drift.false_alert_rate / features)
        level = "alert" if value > strict and value >= drift.psi_alert else "warn"
    return FeatureDrift(
        reference.name, reference.kind, value, noise, level, reference.buckets, reference.shares, actual, rows
    )


def worst_level(drifts: Iterable[FeatureDrift]) -> Level:
    """The most severe level among `drifts` ("ok" when there are none)."""
    return max((drift.level for drift in drifts), key=LEVELS.index, default="ok")
