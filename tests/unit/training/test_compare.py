"""The paired bootstrap, and the gate's error rates in seeded simulations on the real Telco rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from include.training.compare import Scored, bootstrap_weights, metric_bounds, slice_gains, weighted_metric
from include.training.estimators import build_model
from include.training.gate import decide
from include.training.metrics import evaluate, evaluate_outputs
from include.training.preprocess import split_xy
from include.usecases.spec import UseCase

METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "log_loss")


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 1), st.integers(0, 20)), min_size=4, max_size=60).filter(
        lambda rows: len({label for label, _ in rows}) == 2
    )
)
def test_unit_weights_give_scikit_learns_metrics(rows: list[tuple[int, int]]) -> None:
    y = np.array([label for label, _ in rows])
    proba = np.array([score / 20 for _, score in rows])  # coarse scores: many ties
    expected = evaluate(y, proba, 0.5)
    ones = np.ones((1, len(y)))
    for metric in METRICS:
        got = weighted_metric(metric, y, Scored(proba, 0.5), ones)[0]
        assert got == pytest.approx(expected[metric], abs=1e-9), metric


def test_integer_weights_equal_repeating_the_rows() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 50)
    proba = rng.random(50).round(1)
    weights = bootstrap_weights(50, 5, seed=1)
    for draw in weights:
        repeated = np.repeat(np.arange(50), draw.astype(int))
        expected = evaluate(y[repeated], proba[repeated], 0.4)
        for metric in METRICS:
            got = weighted_metric(metric, y, Scored(proba, 0.4), draw[None, :])[0]
            assert got == pytest.approx(expected[metric], abs=1e-9), metric


def test_bounds_are_seeded_and_a_difference_with_itself_is_zero() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    mine = Scored(np.clip(y * 0.3 + rng.random(300) * 0.7, 0, 1), 0.5)
    theirs = Scored(rng.random(300), 0.5)
    first = metric_bounds(y, mine, theirs, ["roc_auc", "log_loss"], 0.9, 500, seed=7)
    assert first == metric_bounds(y, mine, theirs, ["roc_auc", "log_loss"], 0.9, 500, seed=7)
    gain = first[1]["roc_auc"]
    assert gain.lower < gain.estimate < gain.upper
    assert gain.lower > 0  # a model that sees the label beats coin flips, with confidence
    assert first[1]["log_loss"].estimate > 0  # lower log loss counts as a gain
    _, same = metric_bounds(y, mine, mine, ["roc_auc"], 0.9, 500, seed=7)
    assert (same["roc_auc"].lower, same["roc_auc"].upper) == (0.0, 0.0)
    with pytest.raises(ValueError, match="champion: 299 probabilities for 300"):
        metric_bounds(y, mine, Scored(theirs.proba[1:], 0.5), ["roc_auc"], 0.9, 500, seed=7)


# --- the gate's error rates (README, "The gate and drift rules") ------------------------------------

TRIES = 20
# A small random forest: its seed changes the model, as a retrain on the same data would.
FOREST = {"n_estimators": 20, "max_depth": 6, "min_samples_leaf": 5, "max_features": "sqrt"}
HOLDOUT_ROWS = 1100  # about the demo's 14-day holdout


def _fit_and_score(spec: UseCase, seed: int, train: pd.DataFrame, holdout: pd.DataFrame) -> Scored:
    seeded = spec.model_copy(update={"training": spec.training.model_copy(update={"random_state": seed})})
    x, y = split_xy(train, seeded)
    model = build_model(seeded, "random_forest", FOREST).fit(x, y)
    return Scored(model.predict_proba(split_xy(holdout, seeded)[0])[:, 1], 0.5)


@pytest.fixture(scope="module")
def tries(spec: UseCase, _churn: pd.DataFrame) -> list[dict[str, Scored | np.ndarray]]:
    """Per try (a fresh split of the real rows): the holdout labels and three models' holdout scores.

    `champion` and `challenger` are the same search on the same rows with different seeds; `lacking`
    is the champion's seed without the customer's tenure and contract (tenure, TotalCharges, which
    is about tenure times MonthlyCharges, and Contract), the strongest signals in the data.
    """
    strong = {"tenure", "TotalCharges", "Contract"}
    features = spec.features.model_copy(
        update={
            kind: tuple(name for name in getattr(spec.features, kind) if name not in strong)
            for kind in ("numeric", "categorical")
        }
    )
    lacking_spec = spec.model_copy(update={"features": features})
    out = []
    for attempt in range(TRIES):
        shuffled = _churn.sample(frac=1.0, random_state=attempt).reset_index(drop=True)
        holdout, train = shuffled.iloc[:HOLDOUT_ROWS], shuffled.iloc[HOLDOUT_ROWS:]
        out.append(
            {
                "y": split_xy(holdout, spec)[1].to_numpy(),
                "champion": _fit_and_score(spec, 1000 + attempt, train, holdout),
                "challenger": _fit_and_score(spec, 2000 + attempt, train, holdout),
                "lacking": _fit_and_score(lacking_spec, 1000 + attempt, train, holdout),
            }
        )
    return out


def promotions(spec: UseCase, tries: list[dict], champion: str) -> int:
    """Tries in which the spec's gate promotes the challenger over `champion` (any task)."""
    gate, promoted = spec.gate, 0
    for attempt, scores in enumerate(tries):
        y, mine, theirs = scores["y"], scores["challenger"], scores[champion]
        levels, differences = metric_bounds(
            y, mine, theirs, [gate.primary, *gate.guardrails], gate.confidence, gate.resamples, attempt
        )
        figures = {name: bound.estimate for name, bound in levels.items()}
        champion_figures = evaluate_outputs(spec.task, y, theirs.proba, theirs.threshold)
        promoted += decide(figures, champion_figures, gate, levels, differences).passed
    return promoted


def test_a_reseeded_challenger_on_the_same_data_is_promoted_at_most_once_in_20(spec, tries):
    assert promotions(spec, tries, "champion") <= 1


def test_a_challenger_over_a_champion_lacking_the_strongest_features_is_promoted_19_of_20(spec, tries):
    assert promotions(spec, tries, "lacking") >= 19


def test_slices_are_measured_on_the_same_draws_and_count_their_rows() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 400)
    group = np.where(np.arange(400) < 100, "a", "b")
    better = Scored(np.clip(0.5 * y + rng.random(400) * 0.5, 0, 1), 0.5)
    # The champion is as good on "a" and pure noise on "b".
    worse = Scored(np.where(group == "a", better.proba, rng.random(400)), 0.5)
    gains = {g.value: g for g in slice_gains(y, better, worse, {"group": group}, "roc_auc", 0.9, 300, 1)}
    assert (gains["a"].rows, gains["b"].rows) == (100, 300)
    assert gains["a"].gain.estimate == 0.0 and (gains["a"].gain.lower, gains["a"].gain.upper) == (0.0, 0.0)
    assert gains["b"].gain.lower > 0.2
