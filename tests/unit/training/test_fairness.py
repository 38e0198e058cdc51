"""Fairness figures on a small holdout, checked against a hand computation."""

from __future__ import annotations

import numpy as np
import pytest

from include.training.compare import Scored, bootstrap_weights
from include.training.fairness import group_fairness

# Group A: labels 1 1 0 0, predicted 1 0 1 0 (threshold 0.5): selection 2/4, TPR 1/2, FPR 1/2.
# Group B: labels 1 0 0 0, predicted 1 0 0 0: selection 1/4, TPR 1/1, FPR 0/3.
# Group C: one row, too small to count in a gap.
Y = np.array([1, 1, 0, 0, 1, 0, 0, 0, 1])
PROBA = np.array([0.9, 0.4, 0.6, 0.1, 0.8, 0.2, 0.3, 0.4, 0.7])
GROUPS = ["A"] * 4 + ["B"] * 4 + ["C"]


def _figures(**kwargs):
    defaults = {"confidence": 0.9, "resamples": 200, "seed": 7, "min_rows": 2}
    return group_fairness(**{**defaults, **kwargs})


def test_binary_groups_and_gaps_equal_the_hand_computation():
    [found] = _figures(y=Y, scored=Scored(PROBA, 0.5), columns={"segment": GROUPS})

    by_value = {g.value: (g.rows, dict(g.figures)) for g in found.groups}
    assert by_value["A"] == (
        4,
        {"selection_rate": 0.5, "true_positive_rate": 0.5, "false_positive_rate": 0.5},
    )
    assert by_value["B"] == (
        4,
        {"selection_rate": 0.25, "true_positive_rate": 1.0, "false_positive_rate": 0.0},
    )
    assert by_value["C"] == (
        1,
        {"selection_rate": 1.0, "true_positive_rate": 1.0, "false_positive_rate": None},
    )
    gaps = {g.figure: (g.high, g.low, g.bound.estimate) for g in found.gaps}
    assert gaps == {
        "selection_rate": ("A", "B", 0.25),
        "true_positive_rate": ("B", "A", 0.5),
        "false_positive_rate": ("A", "B", 0.5),
    }


def test_a_gaps_bounds_are_the_quantiles_of_the_gates_resamples():
    [found] = _figures(y=Y, scored=Scored(PROBA, 0.5), columns={"segment": GROUPS})
    gap = next(g for g in found.gaps if g.figure == "selection_rate")

    weights = bootstrap_weights(len(Y), 200, 7)
    predicted = (PROBA >= 0.5).astype(float)
    a, b = np.array(GROUPS) == "A", np.array(GROUPS) == "B"
    with np.errstate(divide="ignore", invalid="ignore"):
        draws = (weights @ (predicted * a)) / (weights @ a) - (weights @ (predicted * b)) / (weights @ b)
    lower, upper = np.quantile(draws[np.isfinite(draws)], [0.1, 0.9])
    assert (gap.bound.lower, gap.bound.upper) == pytest.approx((lower, upper), abs=1e-12)
    assert gap.bound.lower <= gap.bound.estimate <= gap.bound.upper


def test_regression_mae_and_multiclass_accuracy_per_group():
    y = np.array([10.0, 12.0, 20.0, 30.0])
    predicted = np.array([11.0, 15.0, 20.0, 26.0])  # errors 1 3 | 0 4
    [found] = _figures(
        y=y, scored=Scored(predicted, regression=True), columns={"region": ["n", "n", "s", "s"]}
    )
    assert {g.value: g.figures["mae"] for g in found.groups} == {"n": 2.0, "s": 2.0}
    assert found.gaps[0].bound.estimate == 0.0

    labels = np.array([0, 1, 2, 2, 1, 0])
    proba = np.eye(3)[[0, 1, 1, 2, 1, 2]]  # right, right, wrong | right, right, wrong
    [found] = _figures(y=labels, scored=Scored(proba), columns={"site": ["x", "x", "x", "y", "y", "y"]})
    assert {g.value: g.figures["accuracy"] for g in found.groups} == pytest.approx({"x": 2 / 3, "y": 2 / 3})


def test_a_null_is_its_own_group_and_fewer_than_two_large_groups_give_no_gap():
    [found] = _figures(
        y=Y, scored=Scored(PROBA, 0.5), columns={"segment": [None] * 4 + ["B"] * 5}, min_rows=5
    )
    assert [(g.value, g.rows) for g in found.groups] == [("<null>", 4), ("B", 5)]
    assert found.gaps == ()
    assert found.to_dict()["gaps"] == []
