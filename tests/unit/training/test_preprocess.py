from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from include.training.preprocess import (
    DerivedFeatures,
    build_preprocessor,
    check_label,
    date_parts,
    split_xy,
    to_binary,
    to_numeric,
)
from include.usecases.spec import Features, UseCase
from tests.unit.training.marketing import contact_days, with_contact_days


def with_features(spec: UseCase, **features: tuple[str, ...]) -> UseCase:
    return spec.model_copy(update={"features": Features(**features)})


def test_churn_features_become_a_complete_numeric_matrix(churn: pd.DataFrame, spec: UseCase) -> None:
    X, _ = split_xy(churn, spec)
    pre = build_preprocessor(spec)
    matrix = pre.fit_transform(X)
    names = list(pre.get_feature_names_out())
    assert matrix.shape == (7043, len(names))
    assert not np.isnan(matrix).any()
    assert {"numeric__TotalCharges", "boolean__SeniorCitizen", "categorical__Contract_Two year"} <= set(names)


def test_blank_total_charges_are_imputed_with_the_median(churn: pd.DataFrame, spec: UseCase) -> None:
    assert churn["TotalCharges"].dtype != float  # the real quirk: text, with blanks
    X, _ = split_xy(churn, spec)
    pre = build_preprocessor(spec).fit(X)
    imputer = pre.named_transformers_["numeric"].named_steps["impute"]
    totals = pd.to_numeric(churn["TotalCharges"], errors="coerce")
    assert totals.isna().sum() == 11
    assert imputer.statistics_[2] == pytest.approx(totals.median())


def test_to_numeric_turns_text_into_floats_and_blanks_into_nan() -> None:
    out = to_numeric(pd.DataFrame({"a": ["1.5", " ", "", "7"], "b": [1, 2, None, 4]}))
    assert out["a"].tolist()[0] == 1.5 and out["a"].tolist()[3] == 7.0
    assert out["a"].isna().tolist() == [False, True, True, False]
    assert out.dtypes.tolist() == [float, float]


def test_to_binary_maps_yes_no_true_false_and_one_zero() -> None:
    frame = pd.DataFrame(
        {
            "text": ["Yes", "no", "TRUE", "false", "1", "0", "maybe", None],
            "number": [1, 0, 1.0, 0.0, True, False, 2, np.nan],
        }
    )
    out = to_binary(frame)
    expected = [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, np.nan, np.nan]
    np.testing.assert_array_equal(out["text"].to_numpy(), expected)
    np.testing.assert_array_equal(out["number"].to_numpy(), expected)


def test_to_binary_reads_categoricals_and_nullable_integers_like_their_values() -> None:
    frame = pd.DataFrame(
        {
            "text": pd.Categorical(["Yes", "no", None, "maybe", "Yes"]),  # as the scorer passes text
            "number": pd.array([1, 0, None, 2, 1], dtype="Int64"),
        }
    )
    out = to_binary(frame)
    expected = [1.0, 0.0, np.nan, np.nan, 1.0]
    np.testing.assert_array_equal(out["text"].to_numpy(), expected)
    np.testing.assert_array_equal(out["number"].to_numpy(), expected)


def test_boolean_features_impute_the_most_frequent_flag(spec: UseCase) -> None:
    spec = with_features(spec, boolean=("flag",))
    train = pd.DataFrame({"flag": ["Yes", "Yes", "No", None], "Churn": "No"})
    pre = build_preprocessor(spec).fit(train)
    assert pre.transform(pd.DataFrame({"flag": [None, "nonsense", "No"]})).ravel().tolist() == [1.0, 1.0, 0.0]


def test_date_parts_derives_year_month_weekday_and_day_of_year() -> None:
    frame = pd.DataFrame({"when": ["2024-02-29 13:00", None, "2025-12-31"]})  # text, as a CSV gives
    out = date_parts(frame)
    assert list(out.columns) == ["when_year", "when_month", "when_dayofweek", "when_dayofyear"]
    assert out.iloc[0].tolist() == [2024.0, 2.0, 3.0, 60.0]  # a Thursday
    assert out.iloc[1].isna().all()
    assert out.iloc[2].tolist() == [2025.0, 12.0, 2.0, 365.0]


def test_datetime_features_go_through_the_pipeline(spec: UseCase) -> None:
    spec = with_features(spec, numeric=("amount",), datetime=("signed_up",))
    frame = pd.DataFrame(
        {
            "amount": [1.0, 2.0, 3.0, 4.0],
            "signed_up": ["2024-01-15", "2024-06-01", None, "2025-03-03"],  # text is parsed, a gap imputed
        }
    )
    pre = build_preprocessor(spec)
    matrix = pre.fit_transform(frame)
    assert list(pre.get_feature_names_out()) == [
        "numeric__amount",
        "datetime__signed_up_year",
        "datetime__signed_up_month",
        "datetime__signed_up_dayofweek",
        "datetime__signed_up_dayofyear",
    ]
    assert matrix.shape == (4, 5) and not np.isnan(matrix).any()


def test_unseen_category_is_ignored_at_prediction(churn: pd.DataFrame, spec: UseCase) -> None:
    X, _ = split_xy(churn, spec)
    pre = build_preprocessor(spec).fit(X)
    unseen = X.head(1).assign(Contract="Ten year")
    names = list(pre.get_feature_names_out())
    row = pre.transform(unseen)[0]
    contract = [i for i, name in enumerate(names) if name.startswith("categorical__Contract_")]
    assert row[contract].tolist() == [0.0, 0.0, 0.0]


def test_split_xy_labels_the_positive_value_one(churn: pd.DataFrame, spec: UseCase) -> None:
    X, y = split_xy(churn, spec)
    assert list(X.columns) == list(spec.features.all)
    assert "Churn" not in X.columns and "customerID" not in X.columns
    assert y.tolist() == (churn["Churn"] == "Yes").astype(int).tolist()
    assert y.sum() == 1869


@pytest.mark.parametrize("column", ["TotalCharges", "Contract", "Churn"])
def test_split_xy_names_a_missing_column(churn: pd.DataFrame, spec: UseCase, column: str) -> None:
    with pytest.raises(ValueError, match=f"lacks the column.*'{column}'"):
        split_xy(churn.drop(columns=column), spec)


def test_split_xy_refuses_rows_without_a_label(churn: pd.DataFrame, spec: UseCase) -> None:
    churn.loc[[3, 5], "Churn"] = None
    with pytest.raises(ValueError, match="label 'Churn' is missing on 2 row"):
        split_xy(churn, spec)


def test_the_preprocessor_learns_from_training_rows_only(
    churn_split: tuple[pd.DataFrame, pd.DataFrame], spec: UseCase
) -> None:
    """Holdout rows carry extreme values and an unseen category; the fitted state must not know them."""
    from include.training.estimators import build_model

    train, holdout = churn_split
    poisoned = holdout.assign(
        MonthlyCharges=1e6, TotalCharges="", tenure=-1000, Contract="Ten year", Partner="Yes"
    )
    frame = pd.concat([train, poisoned], ignore_index=True)
    X, y = split_xy(frame, spec)
    is_train = np.arange(len(frame)) < len(train)
    model = build_model(spec, "logistic_regression", {}).fit(X[is_train], y[is_train])
    pre = model.named_steps["preprocess"]

    numeric = to_numeric(train[list(spec.features.numeric)])
    impute = pre.named_transformers_["numeric"].named_steps["impute"]
    scale = pre.named_transformers_["numeric"].named_steps["scale"]
    np.testing.assert_allclose(impute.statistics_, numeric.median())
    np.testing.assert_allclose(scale.mean_, numeric.fillna(numeric.median()).mean())
    assert scale.n_samples_seen_ == len(train)
    contracts = pre.named_transformers_["categorical"].named_steps["one_hot"].categories_
    assert "Ten year" not in contracts[spec.features.categorical.index("Contract")]
    flags = pre.named_transformers_["boolean"].named_steps["impute"].statistics_
    np.testing.assert_array_equal(flags, to_binary(train[list(spec.features.boolean)]).mode().iloc[0])


def with_label(spec: UseCase, **label) -> UseCase:
    return spec.model_copy(update={"label": spec.label.model_copy(update=label)})


def test_a_positive_value_the_label_never_takes_names_the_key_and_the_column(churn, spec) -> None:
    with pytest.raises(
        ValueError, match=r"`label.positive` 'yes' is not a value of the label column 'Churn'.*'No', 'Yes'"
    ):
        check_label(churn, with_label(spec, positive="yes"))


def test_a_label_of_more_than_two_values_is_cut_only_when_declared(churn, spec, caplog) -> None:
    counts = churn.assign(Churn=churn["tenure"].astype(int) % 4)  # a count: 0, 1, 2, 3
    counted = with_label(spec, positive=1)
    with pytest.raises(
        ValueError, match=r"the label 'Churn' has 4 values \[0, 1, 2, 3\]: 1 against the rest"
    ):
        check_label(counts, counted)
    check_label(counts, with_label(counted, one_vs_rest=True))
    assert "trained as 1 against the other 3 (label.one_vs_rest)" in caplog.text
    check_label(churn, spec)  # the churn label: two values, no word


def test_a_feature_missing_in_training_gets_an_indicator_column(spec: UseCase) -> None:
    """`<name>_missing` is 1 where the value was imputed, for a numeric and a derived feature."""
    spec = with_features(spec, numeric=("a", "b"), derived={"ratio": "a / b", "positive": "b > 0"})
    train = pd.DataFrame({"a": [1.0, None, 3.0, 4.0], "b": [1.0, 2.0, 0.0, 4.0]})
    pre = build_preprocessor(spec)
    matrix = pre.fit_transform(train)
    names = list(pre.get_feature_names_out())
    # `b` and `positive` were never missing in training: no indicator for them.
    assert names == [
        "numeric__a",
        "numeric__b",
        "derived__ratio",
        "derived__positive",
        "numeric_missing__a_missing",
        "derived_missing__ratio_missing",
    ]
    # a is missing on row 1, the ratio on rows 1 (a missing) and 2 (over 0).
    assert matrix[:, 4].tolist() == [0.0, 1.0, 0.0, 0.0]
    assert matrix[:, 5].tolist() == [0.0, 1.0, 1.0, 0.0]
    imputed = pre.named_transformers_["numeric"].named_steps["impute"].statistics_
    assert imputed[0] == 3.0  # the median of 1, 3 and 4
    # A value missing at scoring where training had none is imputed and not flagged (no column).
    scored = pre.transform(pd.DataFrame({"a": [None, 2.0], "b": [None, 2.0]}))
    assert scored.shape == (2, 6) and not np.isnan(scored).any()
    assert scored[:, 4:].tolist() == [[1.0, 1.0], [0.0, 0.0]]


def test_no_indicator_when_training_had_no_missing_value(churn, spec: UseCase) -> None:
    complete = churn[churn["TotalCharges"].str.strip() != ""]
    X, _ = split_xy(complete, spec)
    pre = build_preprocessor(spec).fit(X)
    assert not [name for name in pre.get_feature_names_out() if name.endswith("_missing")]
    assert pre.output_indices_["numeric_missing"] == slice(41, 41)
    blank = pre.transform(split_xy(churn, spec)[0])
    assert blank.shape == (len(churn), 41) and not np.isnan(blank).any()


def test_churn_blank_total_charges_are_flagged(churn, spec: UseCase) -> None:
    X, _ = split_xy(churn, spec)
    pre = build_preprocessor(spec).fit(X)
    names = list(pre.get_feature_names_out())
    assert names[-1] == "numeric_missing__TotalCharges_missing"
    flags = pre.transform(X)[:, -1]
    np.testing.assert_array_equal(flags, (churn["TotalCharges"].str.strip() == "").astype(float))


def test_the_marketing_days_column_gets_its_flags_and_indicators(churn, spec: UseCase) -> None:
    marketing = with_contact_days(spec)
    frame = contact_days(churn)
    X, _ = split_xy(frame, marketing)
    pre = build_preprocessor(marketing).fit(X)
    names = [name.split("__")[1] for name in pre.get_feature_names_out()]
    # d (null on 1 row in 40), and contacted and recency (null where d is) are flagged; TotalCharges
    # and log(TotalCharges) too (blank). per_month is 0 where tenure is 0: never missing.
    assert names[-5:] == [
        "TotalCharges_missing",
        "d_missing",
        "contacted_missing",
        "recency_missing",
        "log_total_missing",
    ]
    derived = DerivedFeatures(dict(marketing.features.derived)).transform(frame)
    d = frame["d"].astype(float)
    np.testing.assert_array_equal(derived["contacted"], np.where(d.isna(), np.nan, d >= 0))
    np.testing.assert_array_equal(derived["recency"], np.where(d.isna(), np.nan, np.where(d >= 0, d, 999)))
    assert derived["per_month"].notna().all() and (derived["per_month"][frame["tenure"] == 0] == 0).all()
    design = pre.transform(X)
    np.testing.assert_array_equal(design[:, names.index("d_missing")], d.isna())
    assert not np.isnan(design).any()
