"""Metrics of a model's holdout outputs per task, and a binary classifier's decision threshold.

binary: the positive class's probabilities and a threshold; multiclass: every class's probability
(one column per class, in the version's class order) with the labels as class indices; regression:
the predicted values.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_absolute_percentage_error,
    precision_recall_curve,
    precision_recall_fscore_support,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
    root_mean_squared_error,
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


def evaluate_outputs(
    task: str, y_true: np.ndarray, outputs: np.ndarray, threshold: float | None = None
) -> dict[str, float]:
    """The task's metrics (`include.usecases.spec.TASK_METRICS`) of `outputs` against `y_true`."""
    if task == "regression":
        return evaluate_regression(y_true, outputs)
    if task == "multiclass":
        return evaluate_multiclass(y_true, outputs)
    return evaluate(y_true, outputs, 0.5 if threshold is None else threshold)


def evaluate_regression(
    y_true: Sequence[float] | np.ndarray, predicted: Sequence[float] | np.ndarray
) -> dict[str, float]:
    """RMSE, MAE, R² and MAPE (NaN unless every label is positive: it divides by the label).

    Raises:
        ValueError: when the shapes differ or a value is not finite.
    """
    y, p = np.asarray(y_true, dtype=float), np.asarray(predicted, dtype=float)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError(f"y_true and predictions must be 1-D and of one length, got {y.shape} and {p.shape}")
    if not (np.isfinite(y).all() and np.isfinite(p).all()):
        raise ValueError("labels and predictions must be finite")
    return {
        "rmse": float(root_mean_squared_error(y, p)),
        "mae": float(mean_absolute_error(y, p)),
        "r2": float(r2_score(y, p)) if len(y) > 1 else float("nan"),
        "mape": float(mean_absolute_percentage_error(y, p)) if (y > 0).all() else float("nan"),
    }


def evaluate_multiclass(y_true: Sequence[int] | np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Log loss, accuracy, balanced accuracy, macro F1 and macro one-vs-rest ROC AUC (NaN when a
    class is absent from `y_true`: its curve is undefined).

    Args:
        y_true: each row's class index (0 .. classes - 1).
        proba: shape (rows, classes), each row's probabilities.

    Raises:
        ValueError: when the shapes differ or a label is not a class index.
    """
    y, p = _multiclass(y_true, proba)
    classes = np.arange(p.shape[1])
    predicted = p.argmax(axis=1)
    present = np.unique(y)
    return {
        "log_loss": float(log_loss(y, p, labels=classes)),
        "accuracy": float(accuracy_score(y, predicted)),
        "balanced_accuracy": float(balanced_accuracy_score(y, predicted)),
        "macro_f1": float(f1_score(y, predicted, labels=classes, average="macro", zero_division=0)),
        "roc_auc_ovr": float(roc_auc_score(y, p, multi_class="ovr", labels=classes))
        if len(present) == len(classes)
        else float("nan"),
    }


def per_class(y_true: Sequence[int] | np.ndarray, proba: np.ndarray, classes: Sequence[object]) -> list[dict]:
    """Precision, recall, F1 and the rows of each class, at the most probable class."""
    y, p = _multiclass(y_true, proba)
    precision, recall, f1, support = precision_recall_fscore_support(
        y, p.argmax(axis=1), labels=np.arange(len(classes)), zero_division=0
    )
    return [
        {"name": c, "precision": float(pr), "recall": float(rc), "f1": float(f), "rows": int(n)}
        for c, pr, rc, f, n in zip(classes, precision, recall, f1, support, strict=True)
    ]


def _multiclass(y_true: Sequence[int] | np.ndarray, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y, p = np.asarray(y_true, dtype=int), np.asarray(proba, dtype=float)
    if p.ndim != 2 or y.shape != (p.shape[0],):
        raise ValueError(f"labels {y.shape} and probabilities {p.shape} must be (rows,) and (rows, classes)")
    if len(y) and (y.min() < 0 or y.max() >= p.shape[1]):
        raise ValueError(f"labels must be class indices 0 .. {p.shape[1] - 1}")
    return y, p
