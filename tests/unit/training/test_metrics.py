from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from include.training.metrics import choose_threshold, evaluate
from include.usecases.spec import METRICS, TASK_METRICS, direction

Y = np.array([0, 0, 1, 1, 0, 1, 0, 0])
P = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9, 0.6, 0.05])


def test_evaluate_reports_every_metric_a_gate_may_name() -> None:
    assert set(evaluate(Y, P, 0.5)) == set(TASK_METRICS["binary"])


def test_evaluate_counts_the_positive_class_at_the_threshold() -> None:
    # At 0.5: predicted positive rows are 3, 5 (true) and 6 (false); row 2 (0.35) is missed.
    metrics = evaluate(Y, P, 0.5)
    assert metrics["accuracy"] == pytest.approx(6 / 8)
    assert metrics["precision"] == pytest.approx(2 / 3)
    assert metrics["recall"] == pytest.approx(2 / 3)
    assert metrics["f1"] == pytest.approx(2 / 3)
    # 15 positive-negative pairs; the negatives scored 0.4 and 0.6 outrank the positive 0.35.
    assert metrics["roc_auc"] == pytest.approx(13 / 15)
    assert 0 < metrics["pr_auc"] <= 1 and metrics["log_loss"] > 0
    assert all(isinstance(value, float) for value in metrics.values())


def test_a_probability_equal_to_the_threshold_is_positive() -> None:
    assert evaluate(Y, P, 0.35)["recall"] == 1.0


def test_choose_threshold_maximises_f1() -> None:
    threshold = choose_threshold(Y, P)
    best = max(f1_score(Y, np.greater_equal(P, t)) for t in np.unique(P))
    assert threshold == 0.8  # rows 3 and 5 only: precision 1, recall 2/3, F1 0.8
    assert f1_score(Y, np.greater_equal(P, threshold)) == pytest.approx(best)


def test_choose_threshold_prefers_the_lowest_of_equal_thresholds() -> None:
    # 0.3 and 0.7 both give F1 = 2/3 here.
    assert choose_threshold([1, 0, 1], [0.3, 0.5, 0.7]) == pytest.approx(0.3)


def test_a_constant_score_predicts_everyone_positive() -> None:
    assert choose_threshold(Y, np.full(len(Y), 0.26)) == 0.26


@pytest.mark.parametrize("y", [[0, 0, 0], [1, 1, 1]])
def test_a_single_class_label_is_refused(y: list[int]) -> None:
    with pytest.raises(ValueError, match=r"only the class.*both 0 and 1 are needed"):
        evaluate(y, [0.2, 0.5, 0.9], 0.5)
    with pytest.raises(ValueError, match="only the class"):
        choose_threshold(y, [0.2, 0.5, 0.9])


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="one length"):
        evaluate([0, 1, 1], [0.2, 0.5], 0.5)


def test_the_losses_are_lower_is_better() -> None:
    assert [m for m in METRICS if direction(m) < 0] == ["log_loss", "rmse", "mae", "mape"]
