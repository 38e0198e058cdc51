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


def task_curves(
    task: str,
    y_true: np.ndarray,
    outputs: np.ndarray,
    threshold: float,
    classes: Sequence[object] | None = None,
    max_points: int = MAX_POINTS,
) -> dict[str, Any]:
    """The pictures of a model's holdout, per task: binary, `holdout_curves`; regression and
    multiclass, `regression_curves` and `multiclass_curves` (each marked with its `kind`)."""
    if task == "regression":
        return regression_curves(y_true, outputs, max_points)
    if task == "multiclass":
        return multiclass_curves(y_true, outputs, classes or (), max_points)
    return holdout_curves(y_true, outputs, threshold, max_points)


def regression_curves(
    y_true: Sequence[float] | np.ndarray,
    predicted: Sequence[float] | np.ndarray,
    max_points: int = MAX_POINTS,
) -> dict[str, Any]:
    """Predicted against actual (a seeded sample of points), the residuals' histogram, and a binned
    calibration: the mean label and the mean prediction in each tenth of the predictions."""
    y, p = np.asarray(y_true, dtype=float), np.asarray(predicted, dtype=float)
    sample = np.sort(np.random.default_rng(0).choice(len(y), min(len(y), max_points), replace=False))
    residuals = y - p
    counts, edges = np.histogram(residuals, bins=20)
    bins = np.array_split(np.argsort(p, kind="stable"), min(10, len(p)))
    return {
        "kind": "regression",
        "rows": len(y),
        "points": {
            "actual": np.round(y[sample], DIGITS).tolist(),
            "predicted": np.round(p[sample], DIGITS).tolist(),
        },
        "residuals": {"edges": np.round(edges, DIGITS).tolist(), "counts": counts.tolist()},
        "calibration": {
            "predicted": [round(float(p[b].mean()), DIGITS) for b in bins],
            "actual": [round(float(y[b].mean()), DIGITS) for b in bins],
            "rows": [len(b) for b in bins],
        },
    }


def multiclass_curves(
    y_true: Sequence[int] | np.ndarray,
    proba: np.ndarray,
    classes: Sequence[object],
    max_points: int = MAX_POINTS,
    max_roc_classes: int = 10,
) -> dict[str, Any]:
    """The confusion matrix (counts, and normalised by the true class), the per-class table, and
    one-vs-rest ROC curves of the first `max_roc_classes` classes present."""
    from include.training.metrics import _multiclass, per_class

    y, p = _multiclass(y_true, proba)
    k = p.shape[1]
    predicted = p.argmax(axis=1)
    counts = np.zeros((k, k), dtype=int)
    np.add.at(counts, (y, predicted), 1)
    totals = counts.sum(axis=1, keepdims=True)
    normalised = np.divide(counts, totals, out=np.zeros((k, k)), where=totals > 0)
    roc = {}
    for index in range(k):
        member = y == index
        if member.all() or not member.any() or len(roc) >= max_roc_classes:
            continue
        fpr, tpr, _ = roc_curve(member.astype(int), p[:, index])
        roc[str(classes[index])] = dict(
            zip(("fpr", "tpr"), _thin(fpr, tpr, max_points=max_points), strict=True)
        )
    return {
        "kind": "multiclass",
        "rows": len(y),
        "classes": [str(c) for c in classes],
        "confusion": {"counts": counts.tolist(), "normalised": np.round(normalised, DIGITS).tolist()},
        "per_class": per_class(y, p, [str(c) for c in classes]),
        "roc": roc,
    }
