"""Holdout curves of a classifier, stored with the model and the gate decision and drawn by the UI page.

Computed once, where the scores are (training and the gate), down-sampled to a few hundred points so
that a registry row stays small; the page never recomputes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_curve

from include.training.metrics import _check

MAX_POINTS = 200
DIGITS = 4


def _thin(*series: np.ndarray, max_points: int) -> list[list[float]]:
    """Every series at the same evenly spaced indices (first and last kept), rounded."""
    n = len(series[0])
    keep = np.unique(np.linspace(0, n - 1, min(n, max_points)).round().astype(int))
    return [np.round(s[keep], DIGITS).tolist() for s in series]


def holdout_curves(
    y_true: Sequence[int] | np.ndarray,
    proba: Sequence[float] | np.ndarray,
    threshold: float,
    max_points: int = MAX_POINTS,
) -> dict[str, Any]:
    """ROC and precision-recall points, and the confusion matrix at `threshold`, as JSON-able values.

    Args:
        y_true: 1 for the positive class, 0 otherwise.
        proba: the predicted probability of the positive class.
        threshold: a row is predicted positive when its probability is >= this.
        max_points: at most this many points per curve.

    Returns:
        `{"roc": {"fpr", "tpr"}, "pr": {"recall", "precision"}, "confusion": {"tn", "fp", "fn", "tp"},
        "threshold", "rows"}`.

    Raises:
        ValueError: when `y_true` holds a single class, or the shapes differ.
    """
    y, p = _check(y_true, proba)
    fpr, tpr, _ = roc_curve(y, p)
    precision, recall, _ = precision_recall_curve(y, p)
    # precision_recall_curve runs from high recall to low: reverse it so recall rises like the ROC's fpr.
    roc_fpr, roc_tpr = _thin(fpr, tpr, max_points=max_points)
    pr_recall, pr_precision = _thin(recall[::-1], precision[::-1], max_points=max_points)
    predicted = p >= threshold
    return {
        "roc": {"fpr": roc_fpr, "tpr": roc_tpr},
        "pr": {"recall": pr_recall, "precision": pr_precision},
        "confusion": {
            "tn": int((~predicted & (y == 0)).sum()),
            "fp": int((predicted & (y == 0)).sum()),
            "fn": int((~predicted & (y == 1)).sum()),
            "tp": int((predicted & (y == 1)).sum()),
        },
        "threshold": float(threshold),
        "rows": len(y),
    }
