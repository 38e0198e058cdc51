from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from include.registry.model_files import FittedModel
from include.training.estimators import Trial
from include.training.importance import _DerivedGiven, permutation_importances
from include.training.preprocess import split_xy
from include.training.tuning import fit_final
from include.usecases.spec import UseCase

LOGISTIC = Trial("logistic_regression-0", "logistic_regression", {"C": 1.0})
DERIVED = {"charges_per_month": "TotalCharges / tenure", "log_total": "log1p(TotalCharges)"}


@pytest.fixture(scope="module")
def derived_spec(spec: UseCase) -> UseCase:
    raw = spec.model_dump()
    raw["features"]["derived"] = DERIVED
    return UseCase.model_validate(raw)


def fitted(spec: UseCase, train: pd.DataFrame) -> FittedModel:
    return fit_final(spec, LOGISTIC, train, threshold=0.4)


def test_every_input_column_is_measured_the_most_useful_first(spec, churn_split) -> None:
    train, holdout = churn_split
    X, y = split_xy(holdout, spec)

    found = permutation_importances(fitted(spec, train), X, y, "roc_auc", random_state=7)

    assert (found["metric"], found["n_repeats"], found["rows"]) == ("roc_auc", 5, len(holdout))
    features = found["features"]
    assert sorted(f["feature"] for f in features) == sorted(spec.features.all)
    assert [f["mean"] for f in features] == sorted((f["mean"] for f in features), reverse=True)
    assert all(f["std"] >= 0 and not f["derived"] for f in features)
    # Contract and tenure carry most of the churn signal: the model loses ROC AUC without them.
    top = {f["feature"] for f in features[:3]}
    assert {"Contract", "tenure"} & top, features[:3]
    assert features[0]["mean"] > 0.01


def test_a_column_the_model_cannot_use_is_worth_nothing(spec, churn_split) -> None:
    train, holdout = (part.assign(gender="Female") for part in churn_split)
    X, y = split_xy(holdout, spec)

    found = permutation_importances(fitted(spec, train), X, y, "roc_auc", random_state=7)

    [gender] = [f for f in found["features"] if f["feature"] == "gender"]
    assert (gender["mean"], gender["std"]) == (0.0, 0.0)


def test_derived_features_are_measured_under_their_own_name(derived_spec, churn_split) -> None:
    train, holdout = churn_split
    X, y = split_xy(holdout, derived_spec)

    found = permutation_importances(fitted(derived_spec, train), X, y, "roc_auc", random_state=7)

    by_name = {f["feature"]: f for f in found["features"]}
    assert set(by_name) == {*derived_spec.features.all, *DERIVED}
    assert {name for name, f in by_name.items() if f["derived"]} == set(DERIVED)


def test_the_derived_view_scores_as_the_pipeline_does(derived_spec, churn_split) -> None:
    train, holdout = churn_split
    model = fitted(derived_spec, train)
    X, _ = split_xy(holdout, derived_spec)
    preprocess = model.pipeline.named_steps["preprocess"]
    design = np.asarray(preprocess.transform(X), dtype="float64")
    columns = preprocess.output_indices_["derived"]

    view = _DerivedGiven(model, design, columns).predict_proba(design[:, columns])

    np.testing.assert_array_equal(view, model.pipeline.predict_proba(X))


def test_seeded_and_capped(spec, churn_split) -> None:
    train, holdout = churn_split
    model = fitted(spec, train)
    X, y = split_xy(holdout, spec)

    first = permutation_importances(model, X, y, "roc_auc", random_state=3, n_repeats=2, max_rows=300)
    again = permutation_importances(model, X, y, "roc_auc", random_state=3, n_repeats=2, max_rows=300)

    assert first == again
    assert (first["rows"], first["n_repeats"]) == (300, 2)


def test_a_lower_is_better_metric_counts_a_rise_as_importance(spec, churn_split) -> None:
    train, holdout = churn_split
    X, y = split_xy(holdout, spec)

    found = permutation_importances(fitted(spec, train), X, y, "log_loss", random_state=7, n_repeats=2)

    assert found["features"][0]["mean"] > 0  # shuffling the best feature raises log loss


def test_mismatched_rows_are_refused(spec, churn_split) -> None:
    train, holdout = churn_split
    X, y = split_xy(holdout, spec)
    with pytest.raises(ValueError, match="X has"):
        permutation_importances(fitted(spec, train), X, y.iloc[:-1], "roc_auc", random_state=7)
