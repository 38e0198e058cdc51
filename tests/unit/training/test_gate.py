"""The gate's rules on given bounds: the floor, the primary's paired gain, the guard-rails."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from include.training.compare import Bound, SliceGain
from include.training.gate import GateDecision, decide
from include.usecases.spec import Gate, UseCase

GATE = Gate(primary="roc_auc", min_improvement=0.005, floor=0.75, guardrails={"accuracy": 0.02})
CANDIDATE = {"roc_auc": 0.86, "accuracy": 0.80}
CHAMPION = {"roc_auc": 0.84, "accuracy": 0.80}


def bound(metric: str, estimate: float, lower: float, upper: float) -> Bound:
    return Bound(metric, estimate, lower, upper, 0.9)


LEVELS = {"roc_auc": bound("roc_auc", 0.86, 0.84, 0.88), "accuracy": bound("accuracy", 0.8, 0.78, 0.82)}
GAINS = {"roc_auc": bound("roc_auc", 0.02, 0.01, 0.03), "accuracy": bound("accuracy", 0.0, -0.01, 0.01)}


def test_the_churn_gate_ranks_by_auc_guards_accuracy_at_90_percent(spec: UseCase) -> None:
    assert spec.gate.primary == "roc_auc"
    assert "accuracy" in spec.gate.guardrails
    assert spec.gate.confidence == 0.9


def test_a_sure_gain_passes_with_every_check_and_its_interval_listed() -> None:
    decision = decide(CANDIDATE, CHAMPION, GATE, LEVELS, GAINS)
    assert decision.passed
    assert decision.reasons == (
        "roc_auc 0.8600, 90% bound 0.8400 >= floor 0.7500",
        "roc_auc gain +0.0200 [+0.0100, +0.0300]: 90% bound +0.0100 >= min_improvement 0.0050",
        "accuracy change +0.0000 [-0.0100, +0.0100]: fall up to 0.0100 at 90% bound, within its "
        "tolerance 0.0200",
    )


def test_a_gain_whose_lower_bound_is_below_min_improvement_is_rejected() -> None:
    noisy = {**GAINS, "roc_auc": bound("roc_auc", 0.0004, -0.011, 0.012)}  # the demo's old promotion
    decision = decide(CANDIDATE, CHAMPION, GATE, LEVELS, noisy)
    assert not decision.passed
    assert decision.reasons == (
        "roc_auc gain +0.0004 [-0.0110, +0.0120]: 90% bound -0.0110 < min_improvement 0.0050",
    )


def test_a_tie_does_not_promote_even_with_no_min_improvement() -> None:
    tie = {**GAINS, "roc_auc": bound("roc_auc", 0.0, 0.0, 0.0)}
    decision = decide(CANDIDATE, CHAMPION, GATE.model_copy(update={"min_improvement": 0.0}), LEVELS, tie)
    assert not decision.passed
    assert decision.reasons == ("roc_auc gain +0.0000: a tie does not promote",)


def test_a_guardrail_whose_fall_may_exceed_its_tolerance_is_rejected() -> None:
    falling = {**GAINS, "accuracy": bound("accuracy", -0.01, -0.025, 0.005)}
    decision = decide(CANDIDATE, CHAMPION, GATE, LEVELS, falling)
    assert not decision.passed
    assert decision.reasons == (
        "accuracy change -0.0100 [-0.0250, +0.0050]: fall up to 0.0250 at 90% bound, more than its "
        "tolerance 0.0200",
    )


def test_without_a_champion_the_floor_decides_on_the_lower_bound() -> None:
    assert decide(CANDIDATE, None, GATE, LEVELS, {}).passed
    unsure = {**LEVELS, "roc_auc": bound("roc_auc", 0.76, 0.74, 0.78)}  # above the floor, not surely
    decision = decide({**CANDIDATE, "roc_auc": 0.76}, None, GATE, unsure, {})
    assert not decision.passed
    assert decision.reasons == ("roc_auc 0.7600, 90% bound 0.7400 < floor 0.7500",)


@pytest.mark.parametrize("key", ["ceiling", "floor"])  # `floor`: as specs wrote a loss's bound before
def test_log_loss_as_primary_is_bounded_from_above(key) -> None:
    gate = Gate(primary="log_loss", **{key: 0.6}, guardrails={"accuracy": 0.02})
    levels = {"log_loss": bound("log_loss", 0.45, 0.40, 0.62), "accuracy": LEVELS["accuracy"]}
    decision = decide({"log_loss": 0.45, "accuracy": 0.8}, None, gate, levels, {})
    assert decision.reasons == ("log_loss 0.4500, 90% bound 0.6200 > ceiling 0.6000",)


@pytest.mark.parametrize(
    ("candidate", "champion", "levels", "gains", "reason"),
    [
        ({"accuracy": 0.9}, CHAMPION, LEVELS, GAINS, "roc_auc missing on the candidate"),
        ({**CANDIDATE, "roc_auc": math.nan}, CHAMPION, LEVELS, GAINS, "roc_auc missing on the candidate"),
        (CANDIDATE, {"roc_auc": 0.8}, LEVELS, GAINS, "accuracy missing on the champion"),
        (CANDIDATE, CHAMPION, LEVELS, {"accuracy": GAINS["accuracy"]}, "roc_auc missing on the champion"),
        (
            CANDIDATE,
            None,
            {**LEVELS, "accuracy": bound("accuracy", 0.8, math.nan, math.nan)},
            {},
            "accuracy missing on the candidate",
        ),
    ],
)
def test_a_missing_figure_or_bound_fails_and_is_named(candidate, champion, levels, gains, reason) -> None:
    decision = decide(candidate, champion, GATE, levels, gains)
    assert not decision.passed
    assert reason in decision.reasons


def test_the_decision_is_strict_json_with_both_models_and_the_bounds() -> None:
    levels = {**LEVELS, "log_loss": bound("log_loss", math.nan, math.nan, math.nan)}
    decision = decide({**CANDIDATE, "log_loss": math.nan}, CHAMPION, GATE, levels, GAINS)
    data = json.loads(json.dumps(decision.to_dict(), allow_nan=False))
    assert isinstance(decision, GateDecision)
    assert data["candidate"] == {**CANDIDATE, "log_loss": None}
    assert data["champion"] == CHAMPION
    assert data["primary"] == "roc_auc"
    assert data["differences"]["roc_auc"] == {
        "metric": "roc_auc",
        "estimate": 0.02,
        "lower": 0.01,
        "upper": 0.03,
        "confidence": 0.9,
    }
    assert data["levels"]["log_loss"]["lower"] is None


margins = st.floats(min_value=-0.05, max_value=0.05)


@given(low=margins, width=st.floats(min_value=0.0, max_value=0.05), accuracy_low=margins)
def test_a_pass_always_has_a_sure_gain_and_a_bounded_fall(
    low: float, width: float, accuracy_low: float
) -> None:
    gains = {
        "roc_auc": bound("roc_auc", low + width / 2, low, low + width),
        "accuracy": bound("accuracy", accuracy_low + 0.01, accuracy_low, accuracy_low + 0.02),
    }
    decision = decide(CANDIDATE, CHAMPION, GATE, LEVELS, gains)
    if decision.passed:
        assert low >= GATE.min_improvement - 1e-9
        assert -accuracy_low <= GATE.guardrails["accuracy"] + 1e-9
    raised = {**gains, "roc_auc": bound("roc_auc", low + width / 2 + 0.1, low + 0.1, low + width + 0.1)}
    if decision.passed:
        assert decide(CANDIDATE, CHAMPION, GATE, LEVELS, raised).passed


def _slice(value: str, rows: int, estimate: float) -> SliceGain:
    return SliceGain("Contract", value, rows, bound("roc_auc", estimate, estimate - 0.05, estimate + 0.05))


def test_a_large_slice_falling_beyond_its_tolerance_fails_a_small_one_is_not_judged() -> None:
    slices = [_slice("Month-to-month", 600, 0.01), _slice("Two year", 99, -0.2)]
    assert decide(CANDIDATE, CHAMPION, GATE, LEVELS, GAINS, slices).passed  # 99 < min_slice_rows 100
    falling = [*slices, _slice("One year", 250, -0.06)]
    decision = decide(CANDIDATE, CHAMPION, GATE, LEVELS, GAINS, falling)
    assert not decision.passed
    assert decision.reasons == (
        "slice Contract=One year (250 rows): roc_auc change -0.0600 [-0.1100, -0.0100], more than "
        "slice_tolerance 0.0500",
    )
    stored = decision.to_dict()["slices"][2]
    assert (stored["column"], stored["value"], stored["rows"], stored["estimate"]) == (
        "Contract",
        "One year",
        250,
        -0.06,
    )
