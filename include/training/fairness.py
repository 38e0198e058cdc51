"""Fairness on the holdout: each protected group's figures, and the largest gap between groups.

Per task, the figures of a group (the holdout rows where an attribute has one value):

    binary       selection_rate (predicted positive at the model's threshold), true_positive_rate,
                 false_positive_rate
    regression   mae
    multiclass   accuracy

Each figure is a ratio of two sums over the group's rows, so it is measured on the gate's bootstrap
resamples (`include.training.compare.weight_blocks`, the same seed) by weighting those sums. The
largest gap of a figure is between the groups with the highest and the lowest value on the whole
holdout, among groups of at least `min_rows` rows; its bounds are the resamples' quantiles of that
pair's difference, at the gate's one-sided confidence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from include.training.compare import Bound, Scored, weight_blocks

FIGURES = {
    "binary": ("selection_rate", "true_positive_rate", "false_positive_rate"),
    "regression": ("mae",),
    "multiclass": ("accuracy",),
}


@dataclass(frozen=True)
class Group:
    """One value of an attribute: its holdout rows and its figures (None where undefined, such as a
    true positive rate with no positive row)."""

    value: str
    rows: int
    figures: Mapping[str, float | None]


@dataclass(frozen=True)
class Gap:
    """A figure's largest gap: `high` minus `low` (the groups with the highest and lowest value)."""

    high: str
    low: str
    high_value: float
    low_value: float
    bound: Bound

    @property
    def figure(self) -> str:
        return self.bound.metric


@dataclass(frozen=True)
class AttributeFairness:
    """One attribute's groups, and each figure's largest gap between groups of `min_rows` or more."""

    attribute: str
    min_rows: int
    groups: tuple[Group, ...]
    gaps: tuple[Gap, ...]

    def to_dict(self) -> dict[str, object]:
        """A strict-JSON dict (NaN bounds become None)."""
        return {
            "attribute": self.attribute,
            "min_rows": self.min_rows,
            "groups": [{"value": g.value, "rows": g.rows, **g.figures} for g in self.groups],
            "gaps": [
                {"high": g.high, "low": g.low, "high_value": g.high_value, "low_value": g.low_value}
                | g.bound.to_dict()
                for g in self.gaps
            ],
        }


def _ratios(y: np.ndarray, scored: Scored) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each figure as per-row numerator and denominator terms: the figure is sum(num) / sum(den)."""
    proba = np.asarray(scored.proba, dtype="float64")
    ones = np.ones(len(y))
    if scored.regression:
        return {"mae": (np.abs(proba - y), ones)}
    if proba.ndim == 2:
        return {"accuracy": ((proba.argmax(axis=1) == y).astype("float64"), ones)}
    predicted = (proba >= scored.threshold).astype("float64")
    return {
        "selection_rate": (predicted, ones),
        "true_positive_rate": (predicted * y, y),
        "false_positive_rate": (predicted * (1 - y), 1 - y),
    }


def _ratio(num: np.ndarray, den: np.ndarray) -> float | None:
    total = float(den.sum())
    return float(num.sum()) / total if total > 0 else None


def group_fairness(
    y: Sequence[float] | np.ndarray,
    scored: Scored,
    columns: Mapping[str, Sequence[object]],
    confidence: float,
    resamples: int,
    seed: int,
    min_rows: int,
) -> list[AttributeFairness]:
    """Every attribute's groups and largest gaps on one model's holdout outputs.

    Args:
        y: the holdout's labels as the models learn them (`split_xy`).
        scored: the model's outputs and threshold on the same rows.
        columns: attribute -> its values on the holdout rows, in order (a null is its own group).
        confidence: the bounds' one-sided confidence level.
        resamples: how many bootstrap resamples (the gate's).
        seed: the resamples' seed (`training.random_state`).
        min_rows: the fewest rows a group needs to count in a gap.
    """
    y = np.asarray(y, dtype="float64")
    ratios = _ratios(y, scored)
    found = []
    for attribute, values in columns.items():
        labels = np.array(["<null>" if pd.isna(v) else str(v) for v in values], dtype=object)
        masks = {value: labels == value for value in sorted(set(labels))}
        groups = tuple(
            Group(
                value,
                int(mask.sum()),
                {name: _ratio(num[mask], den[mask]) for name, (num, den) in ratios.items()},
            )
            for value, mask in masks.items()
        )
        pairs = _extremes(groups, min_rows)
        draws = _gap_draws(ratios, masks, pairs, len(y), resamples, seed)
        gaps = tuple(
            Gap(
                high.value,
                low.value,
                high.figures[name],
                low.figures[name],
                _bound(name, high, low, draws[name], confidence),
            )
            for name, (high, low) in pairs.items()
        )
        found.append(AttributeFairness(attribute, min_rows, groups, gaps))
    return found


def _extremes(groups: Sequence[Group], min_rows: int) -> dict[str, tuple[Group, Group]]:
    """Per figure, the groups (of `min_rows` or more, with the figure defined) with the highest and
    the lowest value; a figure with fewer than two such groups has no gap."""
    pairs = {}
    for name in groups[0].figures if groups else ():
        judged = [g for g in groups if g.rows >= min_rows and g.figures[name] is not None]
        if len(judged) >= 2:
            ordered = sorted(judged, key=lambda g: g.figures[name])  # stable: ties keep value order
            pairs[name] = (ordered[-1], ordered[0])
    return pairs


def _gap_draws(
    ratios: Mapping[str, tuple[np.ndarray, np.ndarray]],
    masks: Mapping[str, np.ndarray],
    pairs: Mapping[str, tuple[Group, Group]],
    rows: int,
    resamples: int,
    seed: int,
) -> dict[str, np.ndarray]:
    """Each paired figure's gap (high minus low) on every resample; NaN where a group has no weight."""
    draws: dict[str, list[np.ndarray]] = {name: [] for name in pairs}
    if not pairs:
        return {}
    for weights in weight_blocks(rows, resamples, seed):
        for name, (high, low) in pairs.items():
            num, den = ratios[name]
            with np.errstate(divide="ignore", invalid="ignore"):
                side = [
                    (weights @ (num * masks[g.value])) / (weights @ (den * masks[g.value]))
                    for g in (high, low)
                ]
            draws[name].append(side[0] - side[1])
    return {name: np.concatenate(parts) for name, parts in draws.items()}


def _bound(name: str, high: Group, low: Group, draws: np.ndarray, confidence: float) -> Bound:
    estimate = float(high.figures[name]) - float(low.figures[name])
    finite = draws[np.isfinite(draws)]
    if not finite.size:
        return Bound(name, estimate, math.nan, math.nan, confidence)
    lower, upper = np.quantile(finite, [1 - confidence, confidence])
    return Bound(name, estimate, float(lower), float(upper), confidence)
