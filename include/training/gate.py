"""The gate: whether a candidate may replace the champion, from paired bounds on one holdout."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from include.training.backtest import Backtest
from include.training.compare import Bound, SliceGain
from include.training.fairness import AttributeFairness
from include.usecases.spec import Gate, direction

logger = logging.getLogger(__name__)

# Figures closer than this count as equal, so float rounding (0.80 - 0.78 = 0.020000000000000018)
# cannot turn a fall of exactly the tolerance into a failure, nor make a tie look like a gain.
EPSILON = 1e-9


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict with the reasons for it, both models' holdout metrics and the evidence.

    Attributes:
        passed: whether the candidate may become the champion.
        reasons: when rejected, every check that failed; when passed, every check (all passed).
        candidate: the candidate's metrics.
        champion: the champion's metrics on the same holdout, or None when there is no champion.
        levels: the candidate's gate metrics with their bootstrap bounds (the floor is judged on them).
        differences: with a champion, each gate metric's paired difference (positive: the candidate
            is better) with its bounds; empty without one.
        primary: the gate's primary metric (None for a decision made before any measurement).
        slices: with a champion and `gate.slices`, the primary's paired gain on every slice.
        backtest: with a champion and `gate.backtest`, both models on the matured days.
        fairness: with `gate.fairness`, the candidate's figures per protected group and their gaps.
    """

    passed: bool
    reasons: tuple[str, ...]
    candidate: Mapping[str, float]
    champion: Mapping[str, float] | None
    levels: Mapping[str, Bound] = field(default_factory=dict)
    differences: Mapping[str, Bound] = field(default_factory=dict)
    primary: str | None = None
    slices: tuple[SliceGain, ...] = ()
    backtest: Backtest | None = None
    fairness: tuple[AttributeFairness, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict; a NaN or infinite figure becomes None."""

        def plain(metrics: Mapping[str, float]) -> dict[str, float | None]:
            return {name: _finite(metrics, name) for name in metrics}

        def bounds(items: Mapping[str, Bound]) -> dict[str, dict[str, Any]]:
            return {name: bound.to_dict() for name, bound in items.items()}

        return {
            "passed": self.passed,
            "reasons": list(self.reasons),
            "candidate": plain(self.candidate),
            "champion": None if self.champion is None else plain(self.champion),
            "primary": self.primary,
            "levels": bounds(self.levels),
            "differences": bounds(self.differences),
            "slices": [gain.to_dict() for gain in self.slices],
            "backtest": None if self.backtest is None else self.backtest.to_dict(),
            "fairness": [part.to_dict() for part in self.fairness],
        }


def _finite(metrics: Mapping[str, Any], name: str) -> float | None:
    value = metrics.get(name)
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def decide(
    candidate: Mapping[str, float],
    champion: Mapping[str, float] | None,
    gate: Gate,
    levels: Mapping[str, Bound],
    differences: Mapping[str, Bound],
    slices: Sequence[SliceGain] = (),
    backtest: Backtest | None = None,
    fairness: Sequence[AttributeFairness] = (),
) -> GateDecision:
    """Decide whether `candidate` may replace `champion`, both measured on the same holdout rows.

    `levels` and `differences` come from `include.training.compare.metric_bounds` (a paired
    bootstrap at ``gate.confidence``); a difference is positive when the candidate is better. The
    candidate passes if and only if all of these hold:

    1. It has every gate metric (the primary and each guard-rail) as a finite number, and so does the
       champion when there is one, and their bounds are finite; a missing figure fails and is named.
    2. Floor: the primary metric's lower bound clears ``gate.floor``; for a loss (lower is better)
       its upper bound stays at or under ``gate.ceiling``.
    3. With a champion: the primary difference's lower bound is ``>= gate.min_improvement`` and its
       estimate is above 0 (a tie never promotes).
    4. With a champion, for every guard-rail ``metric: tolerance``: the upper bound of its fall
       (minus the difference's lower bound) is ``<= tolerance``: the candidate must show, at the
       gate's confidence, that the guard-rail did not fall by more than its tolerance.
    5. With a champion, for every slice in `slices` of at least ``gate.min_slice_rows`` rows: the
       primary metric's estimated fall on the slice is ``<= gate.slice_tolerance`` (a fairness
       guard-rail; judged on the estimate, since a slice's bounds are wide).
    6. With a champion and ``gate.backtest``: on the matured days of `backtest`, the primary's
       pooled paired gain has its lower bound ``>= gate.backtest.min_improvement``; with no matured
       row yet the rule is not judged, and says so.
    7. With ``gate.fairness.max_gap``, for every protected attribute in `fairness` and each of its
       figures: the largest gap between groups has its lower bound ``<= max_gap`` (the candidate's
       own holdout, so judged with or without a champion).

    With no champion, rules 3 to 6 do not apply: the floor (and rule 7) decide, on the lower bound.
    Figures within `EPSILON` of each other count as equal.
    """
    primary = gate.primary
    metrics = (primary, *(name for name in gate.guardrails if name != primary))
    failures: list[str] = []
    passes: list[str] = []
    level_of = f"{gate.confidence:.0%} bound"

    def check(ok: bool, text: str) -> None:
        (passes if ok else failures).append(text)

    for name in metrics:
        if _finite(candidate, name) is None or not _bounded(levels.get(name)):
            failures.append(f"{name} missing on the candidate")
        if champion is not None and (_finite(champion, name) is None or not _bounded(differences.get(name))):
            failures.append(f"{name} missing on the champion")

    sign = direction(primary)
    level = levels.get(primary)
    if _bounded(level):
        worst = level.lower if sign > 0 else level.upper
        above = sign * (worst - gate.bound) >= -EPSILON
        ge, lt, bound = (">=", "<", "floor") if sign > 0 else ("<=", ">", "ceiling")
        check(
            above,
            f"{primary} {level.estimate:.4f}, {level_of} {worst:.4f} "
            f"{ge if above else lt} {bound} {gate.bound:.4f}",
        )
    judged_fairness = _fairness_rule(gate, fairness, check, level_of)
    if champion is None:
        deciders = "the floor and the fairness rule decide" if judged_fairness else "the floor alone decides"
        passes.append(f"no champion: {deciders}")
        return _decision(
            failures, passes, candidate, champion, levels, differences, primary, (), fairness=fairness
        )
    gain = differences.get(primary)
    if _bounded(gain):
        clears = gain.lower >= gate.min_improvement - EPSILON
        check(
            clears,
            f"{primary} gain {gain.text()}: {level_of} {gain.lower:+.4f} "
            f"{'>=' if clears else '<'} min_improvement {gate.min_improvement:.4f}",
        )
        if clears and gain.estimate <= EPSILON:
            failures.append(f"{primary} gain {gain.estimate:+.4f}: a tie does not promote")
    for name, tolerance in gate.guardrails.items():
        moved = differences.get(name)
        if not _bounded(moved):
            continue
        fall = -moved.lower
        within = fall <= tolerance + EPSILON
        check(
            within,
            f"{name} change {moved.text()}: fall up to {max(fall, 0.0):.4f} at {level_of}, "
            f"{'within' if within else 'more than'} its tolerance {tolerance:.4f}",
        )
    for part in slices:
        if part.rows < gate.min_slice_rows or not _bounded(part.gain):
            continue
        fall = -part.gain.estimate
        within = fall <= gate.slice_tolerance + EPSILON
        check(
            within,
            f"slice {part.column}={part.value} ({part.rows} rows): {primary} change {part.gain.text()}, "
            f"{'within' if within else 'more than'} slice_tolerance {gate.slice_tolerance:.4f}",
        )
    if gate.backtest is not None:
        _backtest_rule(gate, backtest, check, level_of)
    return _decision(
        failures, passes, candidate, champion, levels, differences, primary, slices, backtest, fairness
    )


def _fairness_rule(
    gate: Gate, fairness: Sequence[AttributeFairness], check: Callable[[bool, str], None], level_of: str
) -> bool:
    """Rule 7: no protected attribute's gap sure to exceed `max_gap`; whether the rule applies."""
    limit = None if gate.fairness is None else gate.fairness.max_gap
    if limit is None:
        return False
    for part in fairness:
        gaps = [gap for gap in part.gaps if _bounded(gap.bound)]
        if not gaps:
            check(
                True, f"fairness {part.attribute}: fewer than two groups of {part.min_rows} rows: not judged"
            )
        for gap in gaps:
            within = gap.bound.lower <= limit + EPSILON
            check(
                within,
                f"fairness {part.attribute}: {gap.figure} gap {gap.bound.text()} between {gap.high} "
                f"({gap.high_value:.4f}) and {gap.low} ({gap.low_value:.4f}): {level_of} "
                f"{gap.bound.lower:+.4f} {'<=' if within else '>'} max_gap {limit:.4f}",
            )
    return True


def _backtest_rule(
    gate: Gate, backtest: Backtest | None, check: Callable[[bool, str], None], level_of: str
) -> None:
    """Rule 6: the candidate's gain over the champion on the matured days."""
    assert gate.backtest is not None
    wanted = gate.backtest.min_improvement
    if backtest is None or not _bounded(backtest.gain):
        days = "" if backtest is None else f" ({backtest.first} .. {backtest.last})"
        check(True, f"backtest: no matured outcome in the holdout's days{days} yet: not judged")
        return
    gain = backtest.gain
    clears = gain.lower >= wanted - EPSILON
    check(
        clears,
        f"backtest on {len(backtest.days)} matured days ({backtest.rows} rows, {backtest.first} .. "
        f"{backtest.last}): {gate.primary} gain {gain.text()}: {level_of} {gain.lower:+.4f} "
        f"{'>=' if clears else '<'} backtest.min_improvement {wanted:+.4f}",
    )


def _bounded(bound: Bound | None) -> bool:
    return bound is not None and all(math.isfinite(v) for v in (bound.estimate, bound.lower, bound.upper))


def _decision(
    failures: list[str],
    passes: list[str],
    candidate: Mapping[str, float],
    champion: Mapping[str, float] | None,
    levels: Mapping[str, Bound],
    differences: Mapping[str, Bound],
    primary: str,
    slices: Sequence[SliceGain],
    backtest: Backtest | None = None,
    fairness: Sequence[AttributeFairness] = (),
) -> GateDecision:
    decision = GateDecision(
        passed=not failures,
        reasons=tuple(failures or passes),
        candidate=dict(candidate),
        champion=None if champion is None else dict(champion),
        levels=dict(levels),
        differences=dict(differences),
        primary=primary,
        slices=tuple(slices),
        backtest=backtest,
        fairness=tuple(fairness),
    )
    logger.info("Gate %s: %s", "passed" if decision.passed else "rejected", "; ".join(decision.reasons))
    return decision
