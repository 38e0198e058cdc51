"""The derived-feature grammar: what parses, what it computes, and errors that name the problem."""

from __future__ import annotations

import re
import warnings

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


def test_arithmetic_binds_tighter_than_comparison_than_not_than_and_than_or():
    a, b, c = ("col", "a"), ("col", "b"), ("col", "c")
    assert parse("a + 1 > b * 2") == (">", ("+", a, ("num", 1.0)), ("*", b, ("num", 2.0)))
    assert parse("not a > 1 and b or c") == ("or", ("and", ("not", (">", a, ("num", 1.0))), b), c)
    assert parse("a or b and c") == ("or", a, ("and", b, c))
    assert parse("(a or b) and not not c") == ("and", ("or", a, b), ("not", ("not", c)))
    assert parse("-a <= -1") == ("<=", ("neg", a), ("neg", ("num", 1.0)))
    assert parse("where(a != 0, b / a, 0)") == ("where", ("!=", a, ("num", 0.0)), ("/", b, a), ("num", 0.0))
    assert parse("max(a, b) == min(a, 2)") == ("==", ("max", a, b), ("min", a, ("num", 2.0)))
    # Truth values: x is -4 on the second row, so "x > 0 or x < -2" holds on every row.
    assert values("x > 0 or x < -2") == [1.0, 1.0, 1.0]
    assert values("not x > 0 and tenure > 1 or tenure == 0") == [1.0, 1.0, 0.0]
    assert values("x + 1 > 2 * x") == [0.0, 1.0, 0.0]  # 2 > 2 is false


def test_comparisons_give_one_or_zero_and_a_missing_value_gives_missing():
    blank = FRAME["TotalCharges"]  # "" on the first row: missing
    assert blank.iloc[0] == ""
    assert values("TotalCharges >= 40.5") == pytest.approx([np.nan, 1.0, 1.0], nan_ok=True)
    for op, expected in [("<", 1.0), ("<=", 1.0), (">", 0.0), (">=", 0.0), ("==", 0.0), ("!=", 1.0)]:
        assert values(f"x {op} 9")[0] == expected, op
        assert np.isnan(values(f"TotalCharges {op} 9")[0]), op


def test_and_or_not_where_carry_a_missing_value_through():
    # First row: TotalCharges is missing. A number that is not 0 is true.
    assert values("TotalCharges > 0 and tenure > 5") == pytest.approx([np.nan, 0.0, 1.0], nan_ok=True)
    assert values("TotalCharges > 0 or tenure == 0") == pytest.approx([np.nan, 1.0, 1.0], nan_ok=True)
    assert values("not TotalCharges") == pytest.approx([np.nan, 0.0, 0.0], nan_ok=True)
    assert values("x and tenure") == [0.0, 1.0, 1.0]
    assert values("where(TotalCharges > 100, 1, 2)") == pytest.approx([np.nan, 2.0, 1.0], nan_ok=True)
    # Only the branch chosen counts: a ratio over 0 on the first row is never used.
    assert values("where(tenure > 0, x / tenure, -1)") == [-1.0, -2.0, 0.9]


def test_the_unary_functions_and_min_max_compute_as_numpy_does():
    x = FRAME["x"].to_numpy(dtype=float)
    for name in ("abs", "exp", "floor", "ceil", "sign"):
        assert values(f"{name}(x / 3)") == pytest.approx(getattr(np, name)(x / 3).tolist()), name
    assert values("min(x, tenure)") == [0.0, -4.0, 9.0]
    assert values("max(x, tenure) - 1") == [0.0, 1.0, 9.0]
    assert values("max(TotalCharges, 0)") == pytest.approx([np.nan, 40.5, 1000.0], nan_ok=True)


def test_domain_errors_are_missing_values_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning (invalid value, divide by zero, overflow) fails
        assert values("log(x)") == pytest.approx([0.0, np.nan, np.log(9.0)], nan_ok=True)
        assert values("sqrt(x)") == pytest.approx([1.0, np.nan, 3.0], nan_ok=True)
        assert values("log(tenure)") == pytest.approx([np.nan, np.log(2.0), np.log(10.0)], nan_ok=True)
        assert values("log1p(x)") == pytest.approx([np.log(2.0), np.nan, np.log(10.0)], nan_ok=True)
        assert values("exp(x * 1000)") == pytest.approx([np.nan, 0.0, np.nan], nan_ok=True)
        assert values("0 / (tenure - tenure)") == pytest.approx([np.nan] * 3, nan_ok=True)


def test_days_since_contact_minus_one_for_never_becomes_a_flag_and_a_recency():
    """The marketing table: `d` is the days since the last contact, -1 for "never contacted"."""
    frame = pd.DataFrame({"d": [-1, 0, 3, 400, None]})
    derived = DerivedFeatures(
        {
            "contacted": "d >= 0",
            "recency": "where(d >= 0, d, 999)",
            "days": "missing(d, -1)",
            "recent": "d >= 0 and d < 30",
            "log_days": "log1p(max(d, 0))",
        }
    ).fit_transform(frame)
    nan = np.nan
    assert derived["contacted"].tolist() == pytest.approx([0.0, 1.0, 1.0, 1.0, nan], nan_ok=True)
    assert derived["recency"].tolist() == pytest.approx([999.0, 0.0, 3.0, 400.0, nan], nan_ok=True)
    assert derived["days"].tolist() == pytest.approx([nan, 0.0, 3.0, 400.0, nan], nan_ok=True)
    assert derived["recent"].tolist() == pytest.approx([0.0, 1.0, 1.0, 0.0, nan], nan_ok=True)
    assert derived["log_days"].tolist() == pytest.approx(np.log1p([0, 0, 3, 400, nan]), nan_ok=True)


def test_the_existing_forms_give_the_values_they_gave(churn):
    """Ratios, log1p, clip and missing as plain numpy computes them, to the last bit, on the Telco
    rows (the expressions of tests/integration/test_train_dag.py and the docs): a registered model
    scores as it was trained."""
    total = pd.to_numeric(churn["TotalCharges"], errors="coerce").to_numpy()
    tenure = churn["tenure"].to_numpy(dtype=float)
    monthly = churn["MonthlyCharges"].to_numpy(dtype=float)
    with np.errstate(all="ignore"):
        expected = {
            "charges_per_month": total / tenure,
            "log_total": np.log1p(total),
            "known_tenure": np.where(tenure == 0, np.nan, tenure),
            "capped": np.clip(monthly, 0, 150) - 10,
            "bounded_ratio": np.clip(total / tenure, 0, 50),  # clip of an infinite ratio: its bound
            "inverse": 1 / (total / tenure),
        }
    derived = DerivedFeatures(
        {
            "charges_per_month": "TotalCharges / tenure",
            "log_total": "log1p(TotalCharges)",
            "known_tenure": "missing(tenure, 0)",
            "capped": "clip(MonthlyCharges, 0, 150) - 10",
            "bounded_ratio": "clip(TotalCharges / tenure, 0, 50)",
            "inverse": "1 / (TotalCharges / tenure)",
        }
    ).fit_transform(churn)
    for name, numbers in expected.items():
        np.testing.assert_array_equal(
            derived[name].to_numpy(), np.where(np.isfinite(numbers), numbers, np.nan)
        )


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
        ("a + power(a, 2)", "expected one of the functions ['abs', 'ceil', 'clip', 'exp', 'floor', 'log',"),
        ("a + power(a, 2)", "'max', 'min', 'missing', 'sign', 'sqrt', 'where'], not 'power' at 4 ('power')"),
        ("clip(a, 5, 1)", "clip's low 5.0 is above its high 1.0"),
        ("clip(a, b, 1)", "clip's low bound must be a number at 0 ('clip')"),
        ("missing(1, 2)", "expected a column name as missing's first argument at 0 ('missing')"),
        ("__import__('os')", "one of the functions"),
        ("a ** 2", "expected a number, a column or '(' at 3 ('*')"),
        ("a >= ", "expected a number, a column or '(' at the end"),
        ("d > = 0", "expected a number, a column or '(' at 4 ('=')"),
        ("d = 0", "expected an operator or the end at 2 ('='): '==' compares"),
        ("a && b", "at 2 ('&'): write 'and'"),
        ("0 < d < 9", "comparisons do not chain (write 'a < b and b < c') at 6 ('<')"),
        ("log(a, 2)", "log takes 1 argument (2 given) at 0 ('log')"),
        ("1 + where(a, b)", "where takes 3 arguments (2 given) at 4 ('where')"),
        ("max()", "max takes 2 arguments (0 given) at 0 ('max')"),
        ("min(a b)", "expected ',' or ')' at 6 ('b')"),
        ("a and", "expected a number, a column or '(' at the end"),
        ("a + not b", "expected a number, a column or '(' at 4 ('not')"),
        ("(a > 1", "expected ')' at the end"),
    ],
)
def test_what_does_not_parse_is_named(text, message):
    with pytest.raises(ExpressionError, match=re_escape(message)):
        parse(text)


def re_escape(text: str) -> str:
    return re.escape(text)


def test_a_name_is_a_function_only_when_called():
    """A column may be called `log` or `max`; `and`, `or` and `not` are the grammar's own words."""
    assert parse("log(log) + max") == ("+", ("log", ("col", "log")), ("col", "max"))
    assert columns_of(parse("where(d >= 0, missing(e, -1), abs(f))")) == ["d", "e", "f"]


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
    # Both ratios are missing where TotalCharges is blank (and tenure 0): each gets an indicator.
    assert names[-5:] == [
        "derived__per_month",
        "derived__log_total",
        "numeric_missing__TotalCharges_missing",
        "derived_missing__per_month_missing",
        "derived_missing__log_total_missing",
    ]
    derive = pipeline.named_transformers_["derived"]
    # A new customer (tenure 0) gets the training rows' median ratio, not one from the holdout.
    median = derive.named_steps["impute"].statistics_[0]
    ratios = DerivedFeatures({"r": "TotalCharges / tenure"}).transform(train)["r"]
    assert median == pytest.approx(ratios.median())


@pytest.mark.parametrize(
    ("derived", "message"),
    [
        ({"bad": "TotalCharges /"}, "features.derived: Value error, bad: 'TotalCharges /': expected"),
        (
            {"ok": "tenure > 1", "flag": "tenure => 1"},
            "Value error, flag: 'tenure => 1': expected an operator or the end at 7 ('='): '==' compares",
        ),
        (
            {"logged": "log(tenure, 2)"},
            "logged: 'log(tenure, 2)': log takes 1 argument (2 given) at 0 ('log')",
        ),
        ({"p": "pow(tenure, 2)"}, "p: 'pow(tenure, 2)': expected one of the functions"),
        ({"by_contract": "Contract * 2"}, "'Contract' reads string column, not a number"),
        ({"ratio": "nowhere / tenure"}, "features.derived: 'nowhere' is not in `columns`"),
        ({"tenure": "tenure * 2"}, "'tenure' is also a column"),
    ],
)
def test_a_bad_derived_feature_is_a_spec_error_naming_it(spec, tmp_path, derived, message):
    with pytest.raises(SpecError, match=re_escape(message)):
        _with_derived(spec, tmp_path, derived)


def test_the_pages_example_is_a_valid_spec_and_computes_as_the_page_says(spec, tmp_path):
    """docs/adding-a-use-case.md, "Derived features": its block, and the error it quotes."""
    import yaml

    from tests.conftest import REPO
    from tests.unit.training.marketing import with_contact_days

    page = (REPO / "docs" / "adding-a-use-case.md").read_text()
    block = re.search(r"<!-- derived-features-example -->\n```yaml\n(.*?)```", page, re.S).group(1)
    features = yaml.safe_load(block)["features"]
    declared = with_contact_days(spec, features["derived"])
    assert set(declared.features.numeric) == set(features["numeric"])
    frame = pd.DataFrame(
        {
            "d": [-1, 0, 45, None],
            "tenure": [0, 1, 2, 3],
            "MonthlyCharges": [20.0] * 4,
            "TotalCharges": [0, 20, 40, 60],
        }
    )
    derived = DerivedFeatures(dict(declared.features.derived)).transform(frame)
    nan = np.nan
    expected = {
        "contacted": [0.0, 1.0, 1.0, nan],
        "recency": [999.0, 0.0, 45.0, nan],
        "days": [nan, 0.0, 45.0, nan],
        "recent": [0.0, 1.0, 0.0, nan],
        "charges_per_month": [0.0, 20.0, 20.0, 20.0],
        "log_total": [nan, np.log(20), np.log(40), np.log(60)],
    }
    for name, numbers in expected.items():
        assert derived[name].tolist() == pytest.approx(numbers, nan_ok=True), name
    quoted = re.search(r"\(`(features\.derived: Value error, recent: .*?)`\)", page, re.S).group(1)
    with pytest.raises(SpecError, match=re_escape(" ".join(quoted.split()))):
        _with_derived(spec, tmp_path, {"recent": "d >= 0 && d < 30"})
