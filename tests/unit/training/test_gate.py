from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from include.training.gate import GateDecision, decide
from include.usecases.spec import Gate, UseCase

GATE = Gate(primary="roc_auc", min_improvement=0.0, floor=0.75, guardrails={"accuracy": 0.02})
CHAMPION = {"roc_auc": 0.8450, "accuracy": 0.80}


def test_the_churn_gate_ranks_by_auc_and_guards_accuracy(spec: UseCase) -> None:
    assert spec.gate.primary == "roc_auc"
    assert "accuracy" in spec.gate.guardrails


def test_without_a_champion_the_floor_alone_decides() -> None:
    low_accuracy = {"roc_auc": 0.76, "accuracy": 0.40}
    passed = decide(low_accuracy, None, GATE)
    assert passed.passed
    assert "no champion: the floor alone decides" in passed.reasons
    rejected = decide({"roc_auc": 0.7499, "accuracy": 0.95}, None, GATE)
    assert not rejected.passed
    assert rejected.reasons == ("roc_auc 0.7499 < floor 0.7500",)


def test_a_better_candidate_passes_with_every_check_listed() -> None:
    decision = decide({"roc_auc": 0.8500, "accuracy": 0.79}, CHAMPION, GATE)
    assert decision.passed
    assert decision.reasons == (
        "roc_auc 0.8500 >= floor 0.7500",
        "roc_auc 0.8500 >= champion 0.8450 + 0.0000",
        "accuracy 0.8000 -> 0.7900: fell 0.0100, within its tolerance 0.0200",
    )


def test_a_worse_candidate_is_rejected_with_the_figures() -> None:
    decision = decide({"roc_auc": 0.8412, "accuracy": 0.81}, CHAMPION, GATE)
    assert not decision.passed
    assert decision.reasons == ("roc_auc 0.8412 < champion 0.8450 + 0.0000",)


def test_a_tie_does_not_promote() -> None:
    decision = decide(dict(CHAMPION), CHAMPION, GATE)
    assert not decision.passed
    assert decision.reasons == ("roc_auc 0.8450 equals champion 0.8450: a tie does not promote",)


def test_a_tie_after_float_rounding_is_still_a_tie() -> None:
    champion = {"roc_auc": 0.1 + 0.7, "accuracy": 0.8}  # 0.7999999999999999
    assert not decide({"roc_auc": 0.8, "accuracy": 0.8}, champion, GATE).passed


def test_an_improvement_below_min_improvement_is_rejected() -> None:
    gate = GATE.model_copy(update={"min_improvement": 0.01})
    small = decide({"roc_auc": 0.8500, "accuracy": 0.80}, CHAMPION, gate)
    assert not small.passed
    assert small.reasons == ("roc_auc 0.8500 < champion 0.8450 + 0.0100",)
    assert decide({"roc_auc": 0.8550, "accuracy": 0.80}, CHAMPION, gate).passed


def test_a_guardrail_fall_beyond_its_tolerance_is_rejected() -> None:
    decision = decide({"roc_auc": 0.90, "accuracy": 0.77}, CHAMPION, GATE)
    assert not decision.passed
    assert decision.reasons == ("accuracy 0.8000 -> 0.7700: fell 0.0300, more than its tolerance 0.0200",)


def test_a_fall_of_exactly_the_tolerance_passes() -> None:
    assert 0.80 - 0.78 > 0.02  # float rounding, which must not decide
    assert decide({"roc_auc": 0.90, "accuracy": 0.78}, CHAMPION, GATE).passed


@pytest.mark.parametrize(
    ("candidate", "champion", "reason"),
    [
        ({"accuracy": 0.9}, CHAMPION, "roc_auc missing on the candidate"),
        ({"roc_auc": math.nan, "accuracy": 0.9}, CHAMPION, "roc_auc missing on the candidate"),
        ({"roc_auc": 0.9}, CHAMPION, "accuracy missing on the candidate"),
        ({"roc_auc": 0.9}, None, "accuracy missing on the candidate"),
        ({"roc_auc": 0.9, "accuracy": 0.9}, {"roc_auc": 0.8}, "accuracy missing on the champion"),
        (
            {"roc_auc": 0.9, "accuracy": 0.9},
            {"roc_auc": None, "accuracy": 0.8},
            "roc_auc missing on the champion",
        ),
    ],
)
def test_a_missing_metric_fails_and_is_named(
    candidate: dict[str, float], champion: dict[str, float] | None, reason: str
) -> None:
    decision = decide(candidate, champion, GATE)
    assert not decision.passed
    assert reason in decision.reasons


def test_log_loss_as_primary_means_lower_is_better() -> None:
    gate = Gate(primary="log_loss", min_improvement=0.01, floor=0.6, guardrails={"accuracy": 0.02})
    champion = {"log_loss": 0.45, "accuracy": 0.8}
    assert decide({"log_loss": 0.43, "accuracy": 0.8}, champion, gate).passed
    assert decide({"log_loss": 0.44, "accuracy": 0.8}, champion, gate).passed  # exactly 0.01 better
    worse = decide({"log_loss": 0.445, "accuracy": 0.8}, champion, gate)
    assert worse.reasons == ("log_loss 0.4450 > champion 0.4500 - 0.0100",)
    too_high = decide({"log_loss": 0.65, "accuracy": 0.8}, None, gate)
    assert too_high.reasons == ("log_loss 0.6500 > floor 0.6000",)


def test_the_decision_is_json_with_both_models_figures() -> None:
    decision = decide({"roc_auc": 0.86, "accuracy": 0.8, "log_loss": math.nan}, CHAMPION, GATE)
    data = json.loads(json.dumps(decision.to_dict(), allow_nan=False))
    assert data == {
        "passed": True,
        "reasons": list(decision.reasons),
        "candidate": {"roc_auc": 0.86, "accuracy": 0.8, "log_loss": None},
        "champion": CHAMPION,
    }
    assert isinstance(decision, GateDecision)


scores = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
gates = st.builds(
    lambda improvement, floor, tolerance: Gate(
        primary="roc_auc", min_improvement=improvement, floor=floor, guardrails={"accuracy": tolerance}
    ),
    st.floats(min_value=0.0, max_value=0.1),
    scores,
    st.floats(min_value=0.0, max_value=0.1),
)


@given(gate=gates, auc=scores, accuracy=scores)
def test_a_candidate_equal_to_the_champion_never_passes(gate: Gate, auc: float, accuracy: float) -> None:
    figures = {"roc_auc": auc, "accuracy": accuracy}
    assert not decide(dict(figures), figures, gate).passed


@given(
    gate=gates,
    champion=st.tuples(scores, scores),
    gain=st.floats(min_value=-0.05, max_value=0.2),
    fall=st.floats(min_value=-0.05, max_value=0.15),
    raise_by=st.floats(min_value=0.0, max_value=0.5),
)
def test_raising_the_primary_never_turns_a_pass_into_a_fail(
    gate: Gate, champion: tuple[float, float], gain: float, fall: float, raise_by: float
) -> None:
    incumbent = {"roc_auc": champion[0], "accuracy": champion[1]}
    before = {"roc_auc": champion[0] + gain, "accuracy": champion[1] - fall}
    after = {**before, "roc_auc": before["roc_auc"] + raise_by}
    for old in (incumbent, None):
        if decide(before, old, gate).passed:
            assert decide(after, old, gate).passed


@given(gate=gates, candidate=st.tuples(scores, scores), champion=st.tuples(scores, scores))
def test_a_pass_always_beats_the_champion_and_the_floor(
    gate: Gate, candidate: tuple[float, float], champion: tuple[float, float]
) -> None:
    new = {"roc_auc": candidate[0], "accuracy": candidate[1]}
    old = {"roc_auc": champion[0], "accuracy": champion[1]}
    if decide(new, old, gate).passed:
        assert new["roc_auc"] > old["roc_auc"]
        assert new["roc_auc"] >= old["roc_auc"] + gate.min_improvement - 1e-9
        assert new["roc_auc"] >= gate.floor - 1e-9
        assert old["accuracy"] - new["accuracy"] <= gate.guardrails["accuracy"] + 1e-9
