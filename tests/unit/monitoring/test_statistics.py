"""PSI, its sampling noise and the grades: a day like the training rows is quiet, a shifted one alerts."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from include.monitoring.reference import NULL, OTHER, FeatureReference
from include.monitoring.statistics import (
    FeatureDrift,
    Level,
    grade_feature,
    noise_psi,
    psi,
    worst_level,
)
from include.usecases.spec import Drift
from tests.unit.monitoring.conftest import by_feature, measure

# --- grading a day ----------------------------------------------------------------------------------


def test_a_day_like_the_training_rows_is_ok_on_every_feature(reference, day, spec):
    drifts = measure(reference, day, spec)

    assert len(drifts) == len(reference.features) == 19
    assert {d.feature: d.psi for d in drifts if d.psi >= 0.1} == {}
    assert worst_level(drifts) == "ok"
    assert all(d.rows == len(day) for d in drifts)
    assert all(math.fsum(d.actual_shares) == pytest.approx(1.0) for d in drifts)


@pytest.mark.parametrize(
    ("feature", "shift"),
    [
        ("MonthlyCharges", lambda frame: pd.to_numeric(frame["MonthlyCharges"]) * 1.5),
        ("Contract", lambda frame: "Month-to-month"),
        ("tenure", lambda frame: pd.to_numeric(frame["tenure"]) + 24),
        ("PaperlessBilling", lambda frame: "Yes"),
    ],
)
def test_a_shifted_feature_alerts_and_only_that_one(reference, day, spec, feature, shift):
    day[feature] = shift(day)
    drifts = measure(reference, day, spec)

    assert {d.feature for d in drifts if d.psi >= 0.25} == {feature}
    assert by_feature(drifts)[feature].level == "alert"
    assert max(d.psi for d in drifts if d.feature != feature) < 0.1
    assert worst_level(drifts) == "alert"


def test_a_small_day_needs_a_larger_psi_than_noise_gives_at_its_rows(reference, day, spec):
    quiet = by_feature(measure(reference, day.head(80), spec))["tenure"]
    busy = by_feature(measure(reference, day.head(5000), spec))["tenure"]

    assert quiet.psi_noise > 5 * busy.psi_noise  # noise shrinks about as 1 / rows
    assert quiet.psi_noise > 0.3  # more than the usual 0.25 "major shift" at 80 rows
    small = day.head(80).copy()
    small["Contract"] = "Month-to-month"  # a real shift is beyond the noise even at 80 rows
    assert by_feature(measure(reference, small, spec))["Contract"].level == "alert"


def test_noise_psi_is_seeded_and_grows_with_the_quantile():
    shares = (0.5, 0.3, 0.2, 0.0)
    assert noise_psi(shares, 3500, 80, 0.99) == noise_psi(shares, 3500, 80, 0.99)
    assert noise_psi(shares, 3500, 80, 0.999) > noise_psi(shares, 3500, 80, 0.9)
    assert noise_psi(shares, 3500, 80, 0.99) > noise_psi(shares, 3500, 5000, 0.99)
    with pytest.raises(ValueError, match="quantile"):
        noise_psi(shares, 3500, 80, 1.0)
    with pytest.raises(ValueError, match="rows=0"):
        noise_psi(shares, 3500, 0, 0.5)


# --- the noise rates the README states: seeded simulations on the real rows --------------------------


def _days(reference, spec, pool, rows, count, seed, shift=None):
    """Worst levels of `count` days of `rows` rows drawn with replacement from `pool`, maybe shifted."""
    rng = np.random.default_rng(seed)
    levels = []
    for _ in range(count):
        frame = pool.iloc[rng.integers(0, len(pool), rows)].reset_index(drop=True)
        levels.append(worst_level(measure(reference, shift(frame, rng) if shift else frame, spec)))
    return levels


@pytest.mark.parametrize(("rows", "count"), [(80, 200), (500, 100), (5000, 40)])
def test_days_from_the_training_distribution_rarely_warn(reference, halves, spec, rows, count):
    levels = _days(reference, spec, halves[1], rows, count, seed=rows)

    assert sum(level != "ok" for level in levels) <= 0.05 * count
    assert levels.count("alert") <= 0.01 * count


def _monthly_charges_up_20_percent(frame, rng):
    return frame.assign(MonthlyCharges=pd.to_numeric(frame["MonthlyCharges"]) * 1.2)


def _two_year_share_doubled(frame, rng):
    others = np.flatnonzero(frame["Contract"] != "Two year")
    moved = rng.choice(others, size=int((frame["Contract"] == "Two year").sum()), replace=False)
    frame.loc[moved, "Contract"] = "Two year"
    return frame


@pytest.mark.parametrize("shift", [_monthly_charges_up_20_percent, _two_year_share_doubled])
def test_one_shifted_feature_at_500_rows_alerts_on_almost_every_day(reference, halves, spec, shift):
    levels = _days(reference, spec, halves[1], 500, 60, seed=11, shift=shift)

    assert levels.count("alert") >= 0.95 * len(levels)


def test_a_day_is_graded_against_its_specs_thresholds(reference, day, spec):
    day["Contract"] = "Month-to-month"
    contract = by_feature(measure(reference, day, spec))["Contract"]
    assert contract.psi > contract.psi_noise
    at = Drift(psi_warn=contract.psi / 2, psi_alert=contract.psi)
    above = Drift(psi_warn=contract.psi / 2, psi_alert=contract.psi * 1.01)

    assert (
        by_feature(measure(reference, day, spec.model_copy(update={"drift": at})))["Contract"].level
        == "alert"
    )
    assert (
        by_feature(measure(reference, day, spec.model_copy(update={"drift": above})))["Contract"].level
        == "warn"
    )


def test_feature_drift_is_json_able(reference, day, spec):
    drift = measure(reference, day, spec)[0]
    loaded = json.loads(json.dumps(drift.to_dict(), allow_nan=False))

    assert loaded["feature"] == "tenure"
    assert loaded["level"] == "ok"
    assert loaded["buckets"] == list(drift.buckets)
    assert loaded["actual_shares"] == list(drift.actual_shares)


# --- psi --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shares", [[1.0], [0.5, 0.5], [0.2, 0.0, 0.3, 0.5], [0.0, 0.0]])
def test_psi_of_identical_shares_is_zero(shares):
    assert psi(shares, shares) == 0.0


def test_empty_buckets_are_floored_not_infinite():
    value = psi([0.5, 0.5, 0.0], [0.0, 0.5, 0.5])

    assert value == pytest.approx(2 * (0.5 - 1e-4) * math.log(0.5 / 1e-4))


def test_psi_needs_vectors_of_equal_length():
    with pytest.raises(ValueError, match="equal in length"):
        psi([0.5, 0.5], [1.0])


def test_psi_of_two_stacks_is_the_psi_of_each_pair_of_rows():
    expected = np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    actual = np.array([[0.0, 0.5, 0.5], [0.2, 0.3, 0.5]])

    assert psi(expected, actual).tolist() == [psi(expected[0], actual[0]), 0.0]


def _shares(size: int) -> st.SearchStrategy[np.ndarray]:
    weights = st.lists(st.floats(0, 1), min_size=size, max_size=size).map(np.array)
    return weights.map(lambda w: w / w.sum() if w.sum() > 0 else w)


@settings(deadline=None)
@given(st.integers(1, 30).flatmap(lambda n: st.tuples(_shares(n), _shares(n))))
def test_psi_is_finite_non_negative_and_symmetric(pair):
    expected, actual = pair
    forward, backward = psi(expected, actual), psi(actual, expected)

    assert math.isfinite(forward)
    assert forward >= 0
    assert forward == pytest.approx(backward, rel=1e-9, abs=1e-12)
    assert psi(expected, expected) == 0


# --- grading a feature and the worst level ----------------------------------------------------------


# A plan's mix moving from half-half to 90/10 on 10,000 rows: far beyond the noise at any quantile.
PLAN = FeatureReference("plan", "categorical", ("basic", "pro", OTHER, NULL), (0.5, 0.5, 0.0, 0.0))
SHIFTED = np.array([9000, 1000, 0, 0])
SHIFTED_PSI = psi(PLAN.shares, [0.9, 0.1, 0.0, 0.0])
JUST_ABOVE = math.nextafter(SHIFTED_PSI, math.inf)


@pytest.mark.parametrize(
    ("psi_warn", "psi_alert", "level"),
    [
        (JUST_ABOVE, JUST_ABOVE, "ok"),
        (SHIFTED_PSI, JUST_ABOVE, "warn"),
        (SHIFTED_PSI / 2, SHIFTED_PSI, "alert"),
        (SHIFTED_PSI / 4, SHIFTED_PSI / 2, "alert"),
    ],
)
def test_beyond_the_noise_each_threshold_grades_inclusively(psi_warn, psi_alert, level):
    drift = grade_feature(PLAN, SHIFTED, 10_000, Drift(psi_warn=psi_warn, psi_alert=psi_alert), features=19)

    assert drift.psi == SHIFTED_PSI
    assert drift.psi > 100 * drift.psi_noise
    assert drift.level == level
    assert drift.rows == 10_000
    assert drift.actual_shares == (0.9, 0.1, 0.0, 0.0)


def test_within_the_noise_a_feature_is_ok_whatever_the_thresholds():
    drift = grade_feature(PLAN, np.array([45, 35, 0, 0]), 10_000, Drift(psi_warn=1e-3, psi_alert=1e-3), 19)

    assert drift.psi_noise > drift.psi > 1e-3
    assert drift.level == "ok"


def test_grading_needs_rows():
    with pytest.raises(ValueError, match="'plan' on no rows"):
        grade_feature(PLAN, np.zeros(4, dtype="int64"), 10_000, Drift(), 19)


def _drift(level: Level) -> FeatureDrift:
    return FeatureDrift("x", "numeric", 0.0, 0.0, level, (NULL,), (1.0,), (1.0,), 1)


@pytest.mark.parametrize(
    ("levels", "worst"),
    [([], "ok"), (["ok", "ok"], "ok"), (["ok", "warn"], "warn"), (["warn", "alert", "ok"], "alert")],
)
def test_worst_level(levels, worst):
    assert worst_level([_drift(level) for level in levels]) == worst
