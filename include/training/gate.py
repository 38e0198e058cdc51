"""The gate: whether a candidate model may replace the champion, from their figures on one holdout."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from include.training.metrics import direction
from include.usecases.spec import Gate

logger = logging.getLogger(__name__)

# Figures closer than this count as equal, so float rounding (0.80 - 0.78 = 0.020000000000000018)
# cannot turn a fall of exactly the tolerance into a failure, nor make a tie look like a gain.
EPSILON = 1e-9


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict with the reasons for it and both models' holdout metrics.

    Attributes:
        passed: whether the candidate may become the champion.
        reasons: when rejected, every check that failed; when passed, every check (all passed).
        candidate: the candidate's metrics.
        champion: the champion's metrics on the same holdout, or None when there is no champion.
    """

    passed: bool
    reasons: tuple[str, ...]
    candidate: Mapping[str, float]
    champion: Mapping[str, float] | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict; a NaN or infinite metric becomes None."""

        def plain(metrics: Mapping[str, float]) -> dict[str, float | None]:
            return {name: _finite(metrics, name) for name in metrics}

        return {
            "passed": self.passed,
            "reasons": list(self.reasons),
            "candidate": plain(self.candidate),
            "champion": None if self.champion is None else plain(self.champion),
        }


def _finite(metrics: Mapping[str, Any], name: str) -> float | None:
    value = metrics.get(name)
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def decide(candidate: Mapping[str, float], champion: Mapping[str, float] | None, gate: Gate) -> GateDecision:
    """Decide whether `candidate` may replace `champion`, both measured on the same holdout.

    For a metric where higher is better (all but log loss, where every comparison is mirrored) the
    candidate passes if and only if all of these hold:

    1. It has every gate metric (the primary and each guard-rail) as a finite number, and so does the
       champion when there is one; a missing or NaN metric fails and is named.
    2. ``candidate[primary] >= gate.floor``.
    3. With a champion: ``candidate[primary] >= champion[primary] + gate.min_improvement`` and
       ``candidate[primary] > champion[primary]``. The second clause means a tie never promotes;
       it only adds to the first when ``min_improvement`` is 0, where strictly greater is required.
    4. With a champion, for every guard-rail ``metric: tolerance``:
       ``champion[metric] - candidate[metric] <= tolerance`` (a fall of exactly the tolerance passes).

    With no champion, rules 3 and 4 do not apply: the floor alone decides. Figures within `EPSILON`
    of each other count as equal in every comparison (so a tie is still a tie after rounding).
    """
    primary = gate.primary
    metrics = (primary, *(name for name in gate.guardrails if name != primary))
    failures: list[str] = []
    passes: list[str] = []

    def check(ok: bool, text: str) -> None:
        (passes if ok else failures).append(text)

    for name in metrics:
        if _finite(candidate, name) is None:
            failures.append(f"{name} missing on the candidate")
        if champion is not None and _finite(champion, name) is None:
            failures.append(f"{name} missing on the champion")

    sign = direction(primary)
    ge, lt, plus = (">=", "<", "+") if sign > 0 else ("<=", ">", "-")
    value = _finite(candidate, primary)
    if value is not None:
        above = sign * (value - gate.floor) >= -EPSILON
        check(above, f"{primary} {value:.4f} {ge if above else lt} floor {gate.floor:.4f}")
    if champion is None:
        passes.append("no champion: the floor alone decides")
    else:
        best = _finite(champion, primary)
        if value is not None and best is not None:
            gain = sign * (value - best)
            clears = gain >= gate.min_improvement - EPSILON
            check(
                clears,
                f"{primary} {value:.4f} {ge if clears else lt} champion {best:.4f} "
                f"{plus} {gate.min_improvement:.4f}",
            )
            if clears and gain <= EPSILON:
                failures.append(f"{primary} {value:.4f} equals champion {best:.4f}: a tie does not promote")
        for name, tolerance in gate.guardrails.items():
            new, old = _finite(candidate, name), _finite(champion, name)
            if new is None or old is None:
                continue
            fall = direction(name) * (old - new)
            moved = f"{name} {old:.4f} -> {new:.4f}"
            if fall <= EPSILON:
                passes.append(f"{moved}: no fall")
            else:
                within = fall <= tolerance + EPSILON
                check(
                    within,
                    f"{moved}: fell {fall:.4f}, {'within' if within else 'more than'} "
                    f"its tolerance {tolerance:.4f}",
                )

    decision = GateDecision(
        passed=not failures,
        reasons=tuple(failures or passes),
        candidate=dict(candidate),
        champion=None if champion is None else dict(champion),
    )
    logger.info("Gate %s: %s", "passed" if decision.passed else "rejected", "; ".join(decision.reasons))
    return decision
