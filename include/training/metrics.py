"""Metrics of a binary classifier's positive-class probabilities, and the decision threshold."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    log_loss,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
)

logger = logging.getLogger(__name__)


def _check(
    y_true: Sequence[int] | np.ndarray, proba: Sequence[float] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=int)
    p = np.asarray(proba, dtype=float)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError(f"y_true and proba must be 1-D and of one length, got {y.shape} and {p.shape}")
    classes = np.unique(y)
    if not np.array_equal(classes, [0, 1]):
        raise ValueError(
            f"the labels hold only the class(es) {classes.tolist()}; both 0 and 1 are needed "
            "(ROC AUC and the threshold are undefined otherwise)"
        )
    return y, p


def evaluate(
    y_true: Sequence[int] | np.ndarray, proba: Sequence[float] | np.ndarray, threshold: float
) -> dict[str, float]:
    """Accuracy, precision, recall, F1, ROC AUC, PR AUC (average precision) and log loss.

    Args:
        y_true: 1 for the positive class, 0 otherwise.
        proba: the predicted probability of the positive class.
        threshold: a row is predicted positive when its probability is >= this.

    Raises:
        ValueError: when `y_true` holds a single class, or the shapes differ.
    """
    y, p = _check(y_true, proba)
    predicted = (p >= threshold).astype(int)
    return {
        "accuracy": float(accuracy_score(y, predicted)),
        "precision": float(precision_score(y, predicted, zero_division=0)),
        "recall": float(recall_score(y, predicted, zero_division=0)),
        "f1": float(f1_score(y, predicted, zero_division=0)),
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
    }


def choose_threshold(y_true: Sequence[int] | np.ndarray, proba: Sequence[float] | np.ndarray) -> float:
    """The probability threshold that maximises F1 of the positive class on the given data.

    Candidates are the distinct predicted probabilities (a row is positive when its probability is
    >= the threshold); among equal F1 the lowest threshold wins. Use it on the out-of-fold
    predictions of the training part, never on the holdout, which must stay unseen.

    Raises:
        ValueError: when `y_true` holds a single class, or the shapes differ.
    """
    y, p = _check(y_true, proba)
    precision, recall, thresholds = precision_recall_curve(y, p)
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros_like(denominator), where=denominator > 0)
    best = int(np.argmax(f1))
    logger.debug("Threshold %.4f gives F1 %.4f", thresholds[best], f1[best])
    return float(thresholds[best])
