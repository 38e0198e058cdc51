"""Drift monitoring on the real Telco data: a day like the training rows is quiet, a shifted one alerts."""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from include.monitoring.drift import (
    NULL,
    OTHER,
    DriftCounter,
    FeatureDrift,
    Level,
    Reference,
    build_reference,
    level_of,
    noise_psi,
    psi,
    should_retrain,
    worst_level,
)
from include.usecases.spec import Drift, Features, UseCase, get_spec

DATA = Path(__file__).resolve().parents[3] / "data" / "telco_customer_churn.csv"
DAY = dt.date(2025, 3, 1)


@pytest.fixture(scope="module")
def spec() -> UseCase:
    return get_spec("churn")


@pytest.fixture(scope="module")
def halves() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The real rows as text, split in two by a hash of the customer id: same distribution, no overlap."""
    frame = pd.read_csv(DATA, dtype=str, keep_default_na=False)
    frame["ds"] = DAY.isoformat()
    odd = frame["customerID"].map(lambda customer: zlib.crc32(customer.encode()) % 2 == 1)
    return frame[~odd].reset_index(drop=True), frame[odd].reset_index(drop=True)


@pytest.fixture(scope="module")
def reference(halves, spec) -> Reference:
    return build_reference(halves[0], spec)


def measure(reference: Reference, frame: pd.DataFrame, spec: UseCase) -> list[FeatureDrift]:
    """The day's drift, counted in one chunk."""
    counter = DriftCounter(reference, spec)
    counter.add(frame)
    return counter.drifts()


@pytest.fixture
def day(halves) -> pd.DataFrame:
    """The other half, as a scored day (a fresh copy per test)."""
    return halves[1].copy()


def by_feature(drifts: list[FeatureDrift]) -> dict[str, FeatureDrift]:
    return {drift.feature: drift for drift in drifts}


def only(spec: UseCase, **features: tuple[str, ...]) -> UseCase:
    """The churn spec monitoring just the given features, so a test frame needs only those columns."""
    return spec.model_copy(update={"features": Features(**features)})


# --- reference --------------------------------------------------------------------------------------


def test_reference_covers_every_feature_with_shares_summing_to_one(reference, halves, spec):
    assert reference.rows == len(halves[0])
    assert [f.name for f in reference.features] == [
        *spec.features.numeric,
        *spec.features.categorical,
        *spec.features.boolean,
    ]
    for feature in reference.features:
        assert len(feature.buckets) == len(feature.shares)
        assert feature.buckets[-1] == NULL
        assert math.fsum(feature.shares) == pytest.approx(1.0)
        if feature.kind == "numeric":
            assert feature.edges[0] == -math.inf and feature.edges[-1] == math.inf
            assert np.all(np.diff(feature.edges) > 0)
            assert len(feature.edges) == len(feature.buckets)  # one bin per pair of edges, then nulls
            assert len(feature.edges) - 1 <= 10
        else:
            assert feature.buckets[-2] == OTHER


def test_blank_total_charges_are_counted_as_nulls(reference, halves):
    blanks = (halves[0]["TotalCharges"].str.strip() == "").sum()
    assert blanks > 0
    total = reference.feature("TotalCharges")

    assert total.shares[-1] == blanks / reference.rows


def test_typed_and_text_frames_give_the_same_reference(halves, spec, reference):
    typed = halves[0].copy()
    for name in spec.features.numeric:
        typed[name] = pd.to_numeric(typed[name].str.strip().replace("", None))
    typed["SeniorCitizen"] = typed["SeniorCitizen"].astype("Int64")

    assert build_reference(typed, spec) == reference


def test_rare_categories_merge_into_other_but_rare_boolean_values_stay(day, spec):
    day.loc[:19, "Contract"] = "Three year"
    day.loc[:9, "Partner"] = "Maybe"
    reference = build_reference(day, only(spec, categorical=("Contract",), boolean=("Partner",)))

    contract, partner = reference.features
    assert "Three year" not in contract.buckets
    assert contract.shares[contract.buckets.index(OTHER)] == 20 / len(day)
    assert partner.shares[partner.buckets.index("Maybe")] == 10 / len(day)
    assert partner.shares[partner.buckets.index(OTHER)] == 0


def test_a_constant_feature_has_one_bin_up_to_its_value(spec):
    frame = pd.DataFrame({"tenure": [5.0] * 50})
    reference = build_reference(frame, only(spec, numeric=("tenure",)))

    (tenure,) = reference.features
    assert tenure.edges == (-math.inf, 5.0, math.inf)
    assert tenure.buckets == ("(-inf, 5]", "(5, inf]", NULL)
    assert tenure.shares == (1.0, 0.0, 0.0)


def test_reference_round_trips_through_strict_json(reference, day, spec):
    text = json.dumps(reference.to_dict(), allow_nan=False)
    loaded = Reference.from_dict(json.loads(text))

    assert loaded == reference
    assert measure(loaded, day, spec) == measure(reference, day, spec)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda frame: frame.drop(columns=["Contract"]), "missing from the frame: ['Contract']"),
        (lambda frame: frame.iloc[:0], "no rows"),
    ],
)
def test_build_reference_refuses_bad_input(halves, spec, change, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        build_reference(change(halves[0]), spec)


def test_build_reference_needs_two_bins(halves, spec):
    with pytest.raises(ValueError, match="bins must be at least 2"):
        build_reference(halves[0], spec, bins=1)


# --- counting and grading a day ---------------------------------------------------------------------


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


def test_counters_of_shards_merge_into_the_days_counts(reference, day, spec):
    whole = DriftCounter(reference, spec)
    whole.add(day)
    first, second = DriftCounter(reference, spec), DriftCounter(reference, spec)
    first.add(day.iloc[:1000])
    second.add(day.iloc[1000:])
    first.merge(second)

    assert first.rows == len(day)
    assert first.drifts() == whole.drifts()
    other = DriftCounter(
        build_reference(day, only(spec, numeric=("tenure",))), only(spec, numeric=("tenure",))
    )
    with pytest.raises(ValueError, match="different features"):
        first.merge(other)


def test_shard_counters_travel_as_json_and_merge_exactly(reference, day, spec):
    import json

    whole = DriftCounter(reference, spec)
    whole.add(day)
    merged = DriftCounter(reference, spec)
    for rows in (day.iloc[:7], day.iloc[7:1500], day.iloc[1500:]):
        shard = DriftCounter(reference, spec)
        shard.add(rows)
        merged.merge(DriftCounter.from_dict(json.loads(json.dumps(shard.to_dict())), reference, spec))

    assert [c.tolist() for c in merged.counts] == [c.tolist() for c in whole.counts]
    assert merged.drifts() == whole.drifts()
    tenure_only = only(spec, numeric=("tenure",))
    with pytest.raises(ValueError, match="other features or buckets"):
        DriftCounter.from_dict(whole.to_dict(), build_reference(day, tenure_only), tenure_only)


def test_an_unseen_category_lands_in_other(reference, day, spec):
    day.loc[: len(day) // 3, "PaymentMethod"] = "Crypto"
    payment = by_feature(measure(reference, day, spec))["PaymentMethod"]

    other = payment.buckets.index(OTHER)
    assert payment.reference_shares[other] == 0
    assert payment.actual_shares[other] == pytest.approx(1 / 3, abs=1e-3)
    assert "Crypto" not in payment.buckets
    assert payment.level == "alert"


def test_nulls_are_counted_in_their_own_bucket(reference, day, spec):
    fifth = len(day) // 5
    day.loc[: fifth - 1, "Contract"] = None
    day.loc[: fifth - 1, "tenure"] = ""  # text that is no number counts as null
    drifts = by_feature(measure(reference, day, spec))

    for name in ("Contract", "tenure"):
        assert drifts[name].buckets[-1] == NULL
        assert drifts[name].actual_shares[-1] == fifth / len(day)
        assert drifts[name].level == "alert"


def test_counting_chunks_of_categoricals_gives_the_drift_of_the_whole_day(reference, day, spec):
    day.loc[:99, "PaymentMethod"] = "Crypto"
    day.loc[200:299, "Contract"] = None
    text = {name: "category" for name in (*spec.features.categorical, *spec.features.boolean)}
    counter = DriftCounter(reference, spec)
    for start in range(0, len(day), 1000):  # as the scorer passes them: chunks, text as categoricals
        counter.add(day.iloc[start : start + 1000].astype(text))

    assert counter.drifts() == measure(reference, day, spec)
    itself = DriftCounter(build_reference(day, spec), spec)  # counted the way the reference counts
    itself.add(day.astype(text))
    assert all(drift.actual_shares == drift.reference_shares for drift in itself.drifts())


def test_beyond_the_noise_the_spec_thresholds_grade_inclusively(reference, day, spec):
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


def test_a_feature_without_reference_is_skipped_with_a_warning(day, spec, caplog):
    reference = build_reference(day, only(spec, numeric=("tenure",)))
    with caplog.at_level(logging.WARNING, logger="include.monitoring.drift"):
        drifts = measure(reference, day, only(spec, numeric=("tenure", "MonthlyCharges")))

    assert [d.feature for d in drifts] == ["tenure"]
    assert "MonthlyCharges" in caplog.text


def test_drift_refuses_an_empty_day_or_a_missing_column(reference, day, spec):
    with pytest.raises(ValueError, match="no rows"):
        measure(reference, day.iloc[:0], spec)
    with pytest.raises(ValueError, match="'tenure'"):
        measure(reference, day.drop(columns=["tenure"]), spec)


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


# --- levels and the retrain decision ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "level"),
    [
        (0.0, "ok"),
        (math.nextafter(0.1, 0), "ok"),
        (0.1, "warn"),
        (math.nextafter(0.25, 0), "warn"),
        (0.25, "alert"),
        (3.0, "alert"),
    ],
)
def test_levels_are_inclusive_at_each_threshold(value, level):
    assert level_of(value, psi_warn=0.1, psi_alert=0.25) == level


def _drift(level: Level) -> FeatureDrift:
    return FeatureDrift("x", "numeric", 0.0, 0.0, level, (NULL,), (1.0,), (1.0,), 1)


@pytest.mark.parametrize(
    ("levels", "worst"),
    [([], "ok"), (["ok", "ok"], "ok"), (["ok", "warn"], "warn"), (["warn", "alert", "ok"], "alert")],
)
def test_worst_level(levels, worst):
    assert worst_level([_drift(level) for level in levels]) == worst


TRIGGER = dt.date(2025, 3, 3)


@pytest.mark.parametrize(
    ("today", "last", "cooldown", "expected"),
    [
        (TRIGGER, None, 7, True),  # never triggered
        (TRIGGER, TRIGGER, 7, False),  # a rerun of the trigger's own day
        (TRIGGER + dt.timedelta(days=1), TRIGGER, 7, False),
        (TRIGGER + dt.timedelta(days=6), TRIGGER, 7, False),  # last blocked day
        (TRIGGER + dt.timedelta(days=7), TRIGGER, 7, True),  # first free day
        (TRIGGER, TRIGGER, 0, True),  # no cooldown
        (TRIGGER - dt.timedelta(days=30), TRIGGER, 7, False),  # backfill behind a newer trigger
    ],
)
def test_cooldown_boundaries(today, last, cooldown, expected):
    assert should_retrain({today: "alert"}, today, last, cooldown) is expected


@pytest.mark.parametrize("levels", [{DAY: "warn"}, {DAY: "ok"}, {DAY - dt.timedelta(days=1): "alert"}])
def test_only_an_alert_today_retrains(levels):
    assert should_retrain(levels, DAY, None, 7) is False


def test_should_retrain_refuses_unknown_levels_and_negative_cooldowns():
    with pytest.raises(ValueError, match="unknown drift level 'red'"):
        should_retrain({DAY: "red"}, DAY, None, 7)
    with pytest.raises(ValueError, match="cooldown_days must be >= 0"):
        should_retrain({DAY: "alert"}, DAY, None, -1)
