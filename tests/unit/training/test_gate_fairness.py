"""The gate's fairness rule: a gap whose lower bound exceeds `gate.fairness.max_gap` fails it."""

from __future__ import annotations

import json

import numpy as np

from include.training.compare import Bound, Scored
from include.training.fairness import AttributeFairness, Gap, Group, group_fairness
from include.training.gate import decide
from include.usecases.spec import Fairness, Gate

GATE = Gate(primary="roc_auc", floor=0.75, guardrails={"accuracy": 0.02})
CANDIDATE = {"roc_auc": 0.86, "accuracy": 0.80}
LEVELS = {
    "roc_auc": Bound("roc_auc", 0.86, 0.84, 0.88, 0.9),
    "accuracy": Bound("accuracy", 0.8, 0.78, 0.82, 0.9),
}


def _gender(lower: float) -> AttributeFairness:
    """Selection rates 0.40 (Female) and 0.25 (Male): a gap of 0.15 with the given lower bound."""
    groups = (Group("Female", 500, {"selection_rate": 0.40}), Group("Male", 480, {"selection_rate": 0.25}))
    gap = Gap("Female", "Male", 0.40, 0.25, Bound("selection_rate", 0.15, lower, 0.2, 0.9))
    return AttributeFairness("gender", 100, groups, (gap,))


def _gate(max_gap: float | None) -> Gate:
    return GATE.model_copy(update={"fairness": Fairness(attributes=("gender",), max_gap=max_gap)})


def test_a_gap_whose_lower_bound_exceeds_max_gap_is_rejected_naming_the_groups_and_bounds():
    decision = decide(CANDIDATE, None, _gate(0.1), LEVELS, {}, fairness=[_gender(lower=0.12)])
    assert not decision.passed
    assert decision.reasons == (
        "fairness gender: selection_rate gap +0.1500 [+0.1200, +0.2000] between Female (0.4000) and "
        "Male (0.2500): 90% bound +0.1200 > max_gap 0.1000",
    )


def test_a_gap_within_max_gap_at_its_lower_bound_passes():
    decision = decide(CANDIDATE, None, _gate(0.1), LEVELS, {}, fairness=[_gender(lower=0.08)])
    assert decision.passed
    assert decision.reasons[1:] == (
        "fairness gender: selection_rate gap +0.1500 [+0.0800, +0.2000] between Female (0.4000) and "
        "Male (0.2500): 90% bound +0.0800 <= max_gap 0.1000",
        "no champion: the floor and the fairness rule decide",
    )


def test_without_max_gap_the_figures_are_kept_but_not_judged():
    decision = decide(CANDIDATE, None, _gate(None), LEVELS, {}, fairness=[_gender(lower=0.12)])
    assert decision.passed
    assert decision.reasons[-1] == "no champion: the floor alone decides"
    stored = json.loads(json.dumps(decision.to_dict()))["fairness"]
    assert stored[0]["groups"][0] == {"value": "Female", "rows": 500, "selection_rate": 0.4}
    assert stored[0]["gaps"][0] | {} == {
        "high": "Female",
        "low": "Male",
        "high_value": 0.4,
        "low_value": 0.25,
        "metric": "selection_rate",
        "estimate": 0.15,
        "lower": 0.12,
        "upper": 0.2,
        "confidence": 0.9,
    }


def test_the_rule_also_applies_against_a_champion_on_measured_figures():
    # 200 rows per group, labels alternating; the model selects 60 % of group a and 10 % of group b
    # whatever the label, so each rate (selection, true and false positive) differs by 0.5.
    groups = np.array(["a"] * 200 + ["b"] * 200)
    proba = np.r_[np.arange(200) < 120, np.arange(200) < 20].astype(float)
    y = np.arange(400) % 2
    measured = group_fairness(y, Scored(proba, 0.5), {"gender": groups}, 0.9, 500, 42, 100)
    champion = {"roc_auc": 0.80, "accuracy": 0.80}
    gains = {
        "roc_auc": Bound("roc_auc", 0.06, 0.04, 0.08, 0.9),
        "accuracy": Bound("accuracy", 0.0, -0.01, 0.01, 0.9),
    }
    decision = decide(CANDIDATE, champion, _gate(0.3), LEVELS, gains, fairness=measured)
    assert not decision.passed
    figures = [reason.split(" gap ")[0] for reason in decision.reasons]
    assert figures == [
        f"fairness gender: {f}" for f in ("selection_rate", "true_positive_rate", "false_positive_rate")
    ]
    assert decision.reasons[0].startswith("fairness gender: selection_rate gap +0.5000 [+0.4")
    assert "between a (0.6000) and b (0.1000): 90% bound +0.4" in decision.reasons[0]
    assert decision.reasons[0].endswith("> max_gap 0.3000")
    assert decide(CANDIDATE, champion, _gate(0.6), LEVELS, gains, fairness=measured).passed
