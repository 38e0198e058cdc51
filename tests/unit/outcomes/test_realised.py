"""The realised figures and the decay rule, in seeded simulations of matured scored days.

A calibrated model of P(y = 1 | x) = sigmoid(2x) is judged every day on 400 matured rows against
its own holdout figure (ROC AUC on 2,000 holdout rows). Concept drift: from day 10 the label follows
sigmoid(0.5x) while x keeps its distribution, so no feature drifts; decay must be found within
`decay_days` matured days of the change in at least 19 of 20 seeds. With nothing changed, a decay
is reported on at most 1 day in 20.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from include.outcomes.realised import Interval, day_seed, decaying, is_decayed, realised_figures

SEEDS = 20
DAYS = 30
CHANGE = 10
DECAY_DAYS = 3
FIRST = dt.date(2025, 1, 1)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def day_rows(rng: np.random.Generator, slope: float, rows: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """A day's labels drawn with `slope` and the model's probabilities (always sigmoid(2x))."""
    x = rng.normal(size=rows)
    return (rng.random(rows) < sigmoid(slope * x)).astype(int), sigmoid(2 * x)


def decayed_days(seed: int, change: int | None) -> list[dt.date]:
    """The days on which a decay is reported (the last day of a decaying run)."""
    rng = np.random.default_rng(seed)
    expected = roc_auc_score(*day_rows(rng, 2.0, 2000))
    decayed, reported = {}, []
    for n in range(DAYS):
        day = FIRST + dt.timedelta(days=n)
        slope = 0.5 if change is not None and n >= change else 2.0
        y, p = day_rows(rng, slope)
        figures = realised_figures("binary", y, p, 0.5, 0.9, 200, day_seed(day))
        decayed[day] = is_decayed("roc_auc", figures["roc_auc"], expected)
        if decaying(decayed, day, DECAY_DAYS):
            reported.append(day)
    return reported


def test_concept_drift_is_found_within_decay_days_in_19_of_20_seeds():
    deadline = FIRST + dt.timedelta(days=CHANGE + DECAY_DAYS - 1)
    found = 0
    for seed in range(SEEDS):
        after = [day for day in decayed_days(seed, CHANGE) if day >= FIRST + dt.timedelta(days=CHANGE)]
        found += bool(after) and after[0] <= deadline
    assert found >= 19


def test_with_nothing_changed_decay_is_reported_on_at_most_1_day_in_20():
    reported = sum(len(decayed_days(1000 + seed, None)) for seed in range(SEEDS))
    assert reported <= SEEDS * DAYS / 20


def test_the_interval_must_miss_the_expectation_in_the_metrics_direction():
    inside = Interval(0.80, 0.76, 0.84)
    assert not is_decayed("roc_auc", inside, 0.82)
    assert is_decayed("roc_auc", Interval(0.70, 0.66, 0.74), 0.82)
    assert not is_decayed("roc_auc", Interval(0.90, 0.86, 0.94), 0.82)  # better is no decay
    assert is_decayed("rmse", Interval(40.0, 38.0, 42.0), 34.0)  # a loss decays upwards
    assert not is_decayed("rmse", Interval(30.0, 28.0, 32.0), 34.0)
    assert not is_decayed("roc_auc", Interval(None, None, None), 0.82)  # nothing to judge


def test_a_day_not_evaluated_breaks_a_decaying_run():
    days = [FIRST + dt.timedelta(days=n) for n in range(4)]
    assert decaying(dict.fromkeys(days, True), days[-1], 3) == days[1:]
    assert decaying({days[0]: True, days[1]: True, days[3]: True}, days[3], 3) == []


def test_the_figures_of_a_day_are_fixed_by_its_seed_and_need_a_row():
    rng = np.random.default_rng(0)
    y, p = day_rows(rng, 2.0)
    first = realised_figures("binary", y, p, 0.5, 0.9, 200, day_seed(FIRST))
    assert first == realised_figures("binary", y, p, 0.5, 0.9, 200, day_seed(FIRST))
    assert first["roc_auc"].estimate == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    with pytest.raises(ValueError, match="no scored row"):
        realised_figures("binary", y[:0], p[:0], 0.5, 0.9, 200, 1)
