"""Counting a day's rows into the reference's buckets: chunks, shards, unseen values, nulls, refusals."""

from __future__ import annotations

import logging

import pytest

from include.monitoring.counting import DriftCounter
from include.monitoring.reference import NULL, OTHER, build_reference, predicted_values
from tests.unit.monitoring.conftest import by_feature, measure, only


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


def test_a_feature_without_reference_is_skipped_with_a_warning(day, spec, caplog):
    reference = build_reference(day, only(spec, numeric=("tenure",)))
    with caplog.at_level(logging.WARNING, logger="include.monitoring.counting"):
        drifts = measure(reference, day, only(spec, numeric=("tenure", "MonthlyCharges")))

    assert [d.feature for d in drifts] == ["tenure"]
    assert "MonthlyCharges" in caplog.text


def test_drift_refuses_an_empty_day_or_a_missing_column(reference, day, spec):
    with pytest.raises(ValueError, match="no rows"):
        measure(reference, day.iloc[:0], spec)
    with pytest.raises(ValueError, match="'tenure'"):
        measure(reference, day.drop(columns=["tenure"]), spec)


@pytest.mark.parametrize("classes", [None, ("VF", "F", "M", "L")])
def test_the_prediction_is_watched_against_the_holdouts_graded_on_the_holdouts_rows(day, spec, classes):
    """A score (or a class) shifted on a day is graded beyond the noise of the holdout's rows; the
    same distribution is not."""
    import numpy as np

    from include.monitoring.reference import PREDICTION, prediction_reference

    rng = np.random.default_rng(0)
    holdout = rng.dirichlet(np.ones(4), 800) if classes else rng.beta(2, 5, 800)
    watched = build_reference(day, spec).with_feature(prediction_reference(holdout, classes))
    assert watched.feature(PREDICTION).rows == 800

    def graded(outputs):
        counter = DriftCounter(watched, spec)
        counter.add(day, predicted_values(outputs, classes))
        return by_feature(counter.drifts())[PREDICTION]

    same = rng.dirichlet(np.ones(4), len(day)) if classes else rng.beta(2, 5, len(day))
    shifted = rng.dirichlet([8, 1, 1, 1], len(day)) if classes else rng.beta(5, 2, len(day))
    assert graded(same).level == "ok"
    assert graded(shifted).level == "alert"
    with pytest.raises(ValueError, match="pass what the model predicted"):
        DriftCounter(watched, spec).add(day)
