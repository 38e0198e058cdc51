from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import auc

from include.training.curves import holdout_curves

Y = np.array([0, 0, 1, 1, 0, 1, 0, 0])
P = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9, 0.6, 0.05])


def test_the_confusion_matrix_counts_rows_at_the_threshold() -> None:
    # At 0.5: rows 3 and 5 are true positives, row 6 a false positive, row 2 (0.35) a false negative.
    curves = holdout_curves(Y, P, 0.5)
    assert curves["confusion"] == {"tn": 4, "fp": 1, "fn": 1, "tp": 2}
    assert (curves["rows"], curves["threshold"]) == (8, 0.5)


def test_the_roc_curve_runs_from_0_0_to_1_1_and_keeps_its_area() -> None:
    roc = holdout_curves(Y, P, 0.5)["roc"]
    assert (roc["fpr"][0], roc["tpr"][0], roc["fpr"][-1], roc["tpr"][-1]) == (0, 0, 1, 1)
    assert auc(roc["fpr"], roc["tpr"]) == pytest.approx(13 / 15, abs=1e-3)  # points kept to 4 digits


def test_the_pr_curve_rises_in_recall_and_ends_at_full_recall() -> None:
    pr = holdout_curves(Y, P, 0.5)["pr"]
    assert pr["recall"] == sorted(pr["recall"])
    assert pr["recall"][-1] == 1.0
    assert pr["precision"][-1] == pytest.approx(3 / 8)  # everyone positive: the positive share


def test_a_large_holdout_is_down_sampled_keeping_both_ends() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 5000)
    p = np.clip(y * 0.3 + rng.random(5000) * 0.7, 0, 1)
    curves = holdout_curves(y, p, 0.5, max_points=100)
    assert len(curves["roc"]["fpr"]) <= 100 and len(curves["pr"]["recall"]) <= 100
    assert (curves["roc"]["fpr"][0], curves["roc"]["tpr"][-1]) == (0, 1)
    assert sum(curves["confusion"].values()) == 5000


def test_a_single_class_holdout_is_refused() -> None:
    with pytest.raises(ValueError, match="both 0 and 1 are needed"):
        holdout_curves([0, 0, 0], [0.1, 0.2, 0.3], 0.5)
