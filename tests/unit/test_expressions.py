"""The derived-feature grammar: what parses, what it computes, and errors that name the problem."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from include.training.preprocess import DerivedFeatures, build_preprocessor
from include.usecases.expressions import ExpressionError, columns_of, parse
from include.usecases.spec import SpecError, UseCase, load_spec

FRAME = pd.DataFrame(
    {"tenure": [0, 2, 10], "TotalCharges": ["", "40.5", "1000"], "pdays": [-1, 3, 999], "x": [1.0, -4.0, 9.0]}
)


def values(text: str) -> list[float]:
    return DerivedFeatures({"f": text}).fit_transform(FRAME)["f"].tolist()


def test_arithmetic_follows_precedence_and_parentheses():
    assert parse("a + b * 2") == ("+", ("col", "a"), ("*", ("col", "b"), ("num", 2.0)))
    assert parse("(a + b) * -2") == ("*", ("+", ("col", "a"), ("col", "b")), ("neg", ("num", 2.0)))
    assert values("x * 2 - 1") == [1.0, -9.0, 17.0]


def test_a_ratio_over_zero_or_a_blank_is_missing():
    assert values("TotalCharges / tenure") == pytest.approx([np.nan, 20.25, 100.0], nan_ok=True)


def test_log1p_clip_and_a_sentinel_declared_missing():
    assert values("log1p(tenure)") == pytest.approx(np.log1p([0, 2, 10]).tolist())
    assert values("clip(x, 0, 5)") == [1.0, 0.0, 5.0]
    assert values("missing(pdays, -1)") == pytest.approx([np.nan, 3.0, 999.0], nan_ok=True)
    assert columns_of(parse("missing(pdays, -1) / (tenure + x)")) == ["pdays", "tenure", "x"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a +", "expected a number, a column or '(' at the end"),
        ("a b", "expected an operator or the end at 2 ('b')"),
        ("exp(a)", "one of the functions ['log1p', 'clip', 'missing'], not 'exp'"),
        ("clip(a, 5, 1)", "clip's low 5.0 is above its high 1.0"),
        ("missing(1, 2)", "expected a column name"),
        ("__import__('os')", "one of the functions"),
        ("a ** 2", "expected a number, a column or '(' at 3 ('*')"),
    ],
)
def test_what_does_not_parse_is_named(text, message):
    with pytest.raises(ExpressionError, match=re_escape(message)):
        parse(text)


def re_escape(text: str) -> str:
    return re.escape(text)


def _with_derived(spec: UseCase, tmp_path, derived: dict[str, str]):
    import yaml

    raw = spec.model_dump(mode="json")
    raw["features"]["derived"] = derived
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_spec(path)


def test_a_spec_with_derived_features_reads_their_inputs_and_fits_on_training_rows(
    spec, churn_split, tmp_path
):
    declared = _with_derived(
        spec, tmp_path, {"per_month": "TotalCharges / tenure", "log_total": "log1p(TotalCharges)"}
    )
    assert declared.features.inputs == ("TotalCharges", "tenure")
    assert declared.features.all == spec.features.all  # both inputs are features already
    train = churn_split[0]
    pipeline = build_preprocessor(declared).fit(train)
    names = list(pipeline.get_feature_names_out())
    assert names[-2:] == ["derived__per_month", "derived__log_total"]
    derive = pipeline.named_transformers_["derived"]
    # A new customer (tenure 0) gets the training rows' median ratio, not one from the holdout.
    median = derive.named_steps["impute"].statistics_[0]
    ratios = DerivedFeatures({"r": "TotalCharges / tenure"}).transform(train)["r"]
    assert median == pytest.approx(ratios.median())


@pytest.mark.parametrize(
    ("derived", "message"),
    [
        ({"bad": "TotalCharges /"}, "features.derived: Value error, bad: 'TotalCharges /': expected"),
        ({"by_contract": "Contract * 2"}, "'Contract' reads string column, not a number"),
        ({"ratio": "nowhere / tenure"}, "features.derived: 'nowhere' is not in `columns`"),
        ({"tenure": "tenure * 2"}, "'tenure' is also a column"),
    ],
)
def test_a_bad_derived_feature_is_a_spec_error_naming_it(spec, tmp_path, derived, message):
    with pytest.raises(SpecError, match=re_escape(message)):
        _with_derived(spec, tmp_path, derived)
