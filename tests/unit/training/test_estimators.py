from __future__ import annotations

import json

import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from include.training.estimators import (
    BASELINES,
    CLASSIFIER_SPACES,
    FAMILIES,
    REGRESSOR_SPACES,
    Trial,
    build_model,
    sample_trials,
)
from include.training.preprocess import split_xy
from include.usecases.spec import DEFAULT_ESTIMATORS, ESTIMATORS, UseCase

BINARY = DEFAULT_ESTIMATORS["binary"]


def test_the_families_are_the_ones_a_spec_may_name() -> None:
    assert set(FAMILIES) == set(ESTIMATORS) == set(CLASSIFIER_SPACES)
    assert set(REGRESSOR_SPACES) == set(ESTIMATORS) - {"logistic_regression"}


def test_sample_trials_draws_n_per_family_and_one_dummy() -> None:
    trials = sample_trials(BINARY, n_trials=4, random_state=42)
    assert [t.trial_id for t in trials if t.family == "logistic_regression"] == [
        f"logistic_regression-{n}" for n in range(4)
    ]
    assert [t.trial_id for t in trials if t.family == "dummy"] == ["dummy-0"]
    assert len(trials) == 3 * 4 + 1
    assert len({t.trial_id for t in trials}) == len(trials)


def test_sample_trials_is_deterministic_for_a_seed() -> None:
    first = sample_trials(BINARY, 3, random_state=7)
    assert first == sample_trials(BINARY, 3, random_state=7)
    assert first != sample_trials(BINARY, 3, random_state=8)


def test_sampled_parameters_stay_in_the_modest_space() -> None:
    trials = sample_trials(BINARY, 20, random_state=0)
    assert {t.family: t.params for t in trials if t.trial_id.rsplit("-", 1)[1] == "0"} == {
        f: BASELINES[f] for f in BINARY
    }
    for trial in (t for t in trials if t.trial_id.rsplit("-", 1)[1] != "0"):
        params = trial.params
        if trial.family == "logistic_regression":
            assert 1e-2 <= params["C"] <= 1e2
        elif trial.family == "random_forest":
            assert params["n_estimators"] <= 300 and params["max_depth"] <= 12
        elif trial.family == "hist_gradient_boosting":
            assert 0.02 <= params["learning_rate"] <= 0.3 and params["max_iter"] <= 200


def test_trial_round_trips_through_json() -> None:
    for trial in sample_trials(BINARY, 2, random_state=42):
        data = json.loads(json.dumps(trial.to_dict()))
        assert Trial.from_dict(data) == trial


@pytest.mark.parametrize(
    ("families", "n_trials", "message"),
    [
        (["xgboost"], 2, "unknown model family 'xgboost'"),
        (["dummy"], 0, "n_trials must be at least 1"),
    ],
)
def test_sample_trials_refuses_bad_input(families: list[str], n_trials: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sample_trials(families, n_trials, random_state=42)


def test_build_model_refuses_an_unknown_family(spec: UseCase) -> None:
    with pytest.raises(ValueError, match="unknown model family 'svm'"):
        build_model(spec, "svm", {})


@pytest.mark.parametrize("family", ESTIMATORS)
def test_build_model_uses_the_spec_seed_and_one_core(spec: UseCase, family: str) -> None:
    trial = sample_trials([family], 1, random_state=1)[0]
    model = build_model(spec, family, trial.params)
    estimator = model.named_steps["model"]
    params = estimator.get_params()
    assert params.get("random_state", spec.training.random_state) == spec.training.random_state
    assert params.get("n_jobs") in (None, 1)
    assert {k: params[k] for k in trial.params} == dict(trial.params)
    if family == "dummy":
        assert params["strategy"] == "prior"


@pytest.mark.parametrize("family", ESTIMATORS)
def test_every_family_fits_and_predicts_probabilities(
    churn: pd.DataFrame, spec: UseCase, family: str
) -> None:
    X, y = split_xy(churn.head(600), spec)
    trial = sample_trials([family], 1, random_state=42)[0]
    proba = build_model(spec, family, trial.params).fit(X[:500], y[:500]).predict_proba(X[500:])
    assert proba.shape == (100, 2)
    assert ((proba >= 0) & (proba <= 1)).all()


def test_logistic_regression_reaches_published_auc_on_the_time_split(
    churn_split: tuple[pd.DataFrame, pd.DataFrame], spec: UseCase
) -> None:
    train, holdout = churn_split
    model = build_model(spec, "logistic_regression", {}).fit(*split_xy(train, spec))
    X, y = split_xy(holdout, spec)
    assert roc_auc_score(y, model.predict_proba(X)[:, 1]) >= 0.83


def test_class_weighting_is_searched_for_every_family_that_has_it():
    trials = sample_trials(["logistic_regression", "hist_gradient_boosting", "random_forest"], 8, 42)
    for family in ("logistic_regression", "hist_gradient_boosting", "random_forest"):
        weights = {t.params.get("class_weight") for t in trials if t.family == family}
        assert weights == {None, "balanced"}, family
