from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from include.registry.model_files import FittedModel
from include.training.estimators import Trial
from include.training.importance import _DesignGiven, computed_inputs, permutation_importances
from include.training.preprocess import split_xy
from include.training.tuning import fit_final
from include.usecases.spec import UseCase
from tests.unit.training.marketing import DERIVED as MARKETING
from tests.unit.training.marketing import contact_days, with_contact_days

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
    # Every raw column, and the indicator of TotalCharges (blank in training), the model's only
    # input the pipeline computes.
    assert sorted(f["feature"] for f in features) == sorted([*spec.features.all, "TotalCharges_missing"])
    assert [f["mean"] for f in features] == sorted((f["mean"] for f in features), reverse=True)
    assert all(f["std"] >= 0 for f in features)
    computed = {f["feature"]: (f["derived"], f["indicator"]) for f in features if f["derived"]}
    assert computed == {"TotalCharges_missing": (True, True)}
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
    # Both derived features are missing where TotalCharges is blank: each has its indicator.
    indicators = {"TotalCharges_missing", "charges_per_month_missing", "log_total_missing"}
    assert set(by_name) == {*derived_spec.features.all, *DERIVED, *indicators}
    assert {name for name, f in by_name.items() if f["derived"]} == {*DERIVED, *indicators}
    assert {name for name, f in by_name.items() if f["indicator"]} == indicators


def test_the_new_grammar_and_its_indicators_are_measured_per_model_input(spec, churn_split) -> None:
    marketing = with_contact_days(spec)
    train, holdout = (contact_days(part) for part in churn_split)
    X, y = split_xy(holdout, marketing)
    model = fitted(marketing, train)

    found = permutation_importances(model, X, y, "roc_auc", random_state=7, n_repeats=2)

    by_name = {f["feature"]: f for f in found["features"]}
    indicators = {
        "TotalCharges_missing",
        "d_missing",
        "contacted_missing",
        "recency_missing",
        "log_total_missing",
    }
    assert set(by_name) == {*marketing.features.all, *MARKETING, *indicators}
    assert {n for n, f in by_name.items() if f["derived"] and not f["indicator"]} == set(MARKETING)
    assert {n for n, f in by_name.items() if f["indicator"]} == indicators
    assert not any(by_name[n]["derived"] or by_name[n]["indicator"] for n in marketing.features.all)
    # d is informative (churners were contacted more recently): shuffling it costs ROC AUC.
    assert by_name["d"]["mean"] > 0


def test_computed_inputs_name_each_design_column(spec, churn_split) -> None:
    marketing = with_contact_days(spec)
    model = fitted(marketing, contact_days(churn_split[0]))
    preprocess = model.pipeline.named_steps["preprocess"]

    columns, names, indicators = computed_inputs(preprocess)

    every = list(preprocess.get_feature_names_out())
    assert [every[c].split("__")[1] for c in columns] == names
    assert names[:4] == list(MARKETING) and all(n.endswith("_missing") for n in names[4:])
    assert indicators == [False] * 4 + [True] * (len(names) - 4)


def test_the_derived_view_scores_as_the_pipeline_does(derived_spec, churn_split) -> None:
    train, holdout = churn_split
    model = fitted(derived_spec, train)
    X, _ = split_xy(holdout, derived_spec)
    preprocess = model.pipeline.named_steps["preprocess"]
    design = np.asarray(preprocess.transform(X), dtype="float64")
    columns, _, _ = computed_inputs(preprocess)
    assert len(columns) == 5  # two derived features, three indicators

    view = _DesignGiven(model, design, columns).predict_proba(design[:, columns])

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
