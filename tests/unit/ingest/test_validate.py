"""Row validation on real Telco rows: each fault quarantines exactly its rows, with the column named."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from include.ingest.checks import NUMBER, column_rules, duplicate_reason, reason_kind, shown, split_reasons
from include.ingest.validate import QUARANTINE_COLUMNS, IngestError, check_columns
from include.usecases.spec import UseCase, get_spec
from tools.testkit import Validated, validate_rows

TELCO_CSV = Path(__file__).resolve().parents[3] / "data" / "telco_customer_churn.csv"
ID = "customerID"
SAMPLE = 30


@pytest.fixture(scope="module")
def spec() -> UseCase:
    return get_spec("churn")


@pytest.fixture(scope="module")
def telco() -> pd.DataFrame:
    """The shipped data as the sources send it: every value text, blanks kept."""
    return pd.read_csv(TELCO_CSV, dtype="str", keep_default_na=False)


@pytest.fixture
def rows(telco) -> pd.DataFrame:
    """The first rows of the real data, all of them valid (a fresh copy per test)."""
    return telco.head(SAMPLE).copy()


def validate(rows: pd.DataFrame, spec: UseCase) -> Validated:
    return validate_rows(rows, spec.columns, ID, "snapshots")


def quarantined_ids(result: Validated) -> list[str]:
    return result.quarantined["entity_id"].tolist()


def reasons_of(result: Validated) -> list[str]:
    return result.quarantined["reasons"].tolist()


def test_real_rows_are_all_kept_and_typed(rows, spec):
    result = validate(rows, spec)

    assert len(result.valid) == SAMPLE
    assert result.quarantined.empty
    assert list(result.quarantined.columns) == QUARANTINE_COLUMNS
    assert result.valid[ID].tolist() == rows[ID].tolist()
    assert str(result.valid["tenure"].dtype) == "Int64"
    assert str(result.valid["SeniorCitizen"].dtype) == "Int64"
    assert result.valid["TotalCharges"].dtype == "float64"
    assert result.valid.loc[0, "TotalCharges"] == pytest.approx(29.85)


def test_text_in_a_number_column_is_quarantined(rows, spec):
    rows.loc[3, "TotalCharges"] = "n/a"

    result = validate(rows, spec)

    assert quarantined_ids(result) == [rows.loc[3, ID]]
    assert reasons_of(result) == ["TotalCharges: not a number: 'n/a'"]
    assert json.loads(result.quarantined.loc[0, "record"])["TotalCharges"] == "n/a"
    assert result.quarantined.loc[0, "source"] == "snapshots"
    assert result.quarantined.loc[0, "row_number"] == 3
    assert len(result.valid) == SAMPLE - 1


def test_a_blank_total_charges_is_kept_as_null(telco, spec):
    # Customers in their first month: the real file has a blank (a space) in TotalCharges.
    blanks = telco[telco["TotalCharges"].str.strip() == ""]
    assert len(blanks) == 11

    result = validate(blanks, spec)

    assert result.quarantined.empty
    assert result.valid[ID].tolist() == blanks[ID].tolist()
    assert result.valid["TotalCharges"].isna().all()
    assert (result.valid["tenure"] == 0).all()


def test_a_value_outside_the_allowed_set_is_quarantined(rows, spec):
    rows.loc[5, "Contract"] = "Three year"

    result = validate(rows, spec)

    assert quarantined_ids(result) == [rows.loc[5, ID]]
    assert reasons_of(result)[0].startswith("Contract: 'Three year' fails isin(")


def test_a_negative_tenure_is_quarantined(rows, spec):
    rows.loc[7, "tenure"] = "-4"

    result = validate(rows, spec)

    assert quarantined_ids(result) == [rows.loc[7, ID]]
    assert reasons_of(result)[0].startswith("tenure: -4 fails greater_than_or_equal_to(0")


def test_a_fractional_tenure_is_quarantined(rows, spec):
    rows.loc[8, "tenure"] = "12.5"

    result = validate(rows, spec)

    assert quarantined_ids(result) == [rows.loc[8, ID]]
    assert reasons_of(result) == ["tenure: not an integer: '12.5'"]


def test_a_duplicated_id_quarantines_both_rows(rows, spec):
    twin = rows.loc[2, ID]
    rows.loc[9, ID] = twin

    result = validate(rows, spec)

    assert quarantined_ids(result) == [twin, twin]
    assert result.quarantined["row_number"].tolist() == [2, 9]
    assert reasons_of(result) == [f"customerID: duplicate id {twin!r}"] * 2
    assert twin not in result.valid[ID].tolist()


@pytest.mark.parametrize("blank", ["", "   "])
def test_a_null_in_a_non_nullable_column_is_quarantined(rows, spec, blank):
    rows.loc[4, "gender"] = blank

    result = validate(rows, spec)

    assert quarantined_ids(result) == [rows.loc[4, ID]]
    assert reasons_of(result) == ["gender: is empty"]


def test_an_id_not_matching_its_pattern_is_quarantined(rows, spec):
    rows.loc[1, ID] = "5575-gnvde"

    result = validate(rows, spec)

    assert quarantined_ids(result) == ["5575-gnvde"]
    assert reasons_of(result)[0].startswith("customerID: '5575-gnvde' fails str_matches(")


def test_every_fault_of_a_row_is_listed(rows, spec):
    rows.loc[0, ["gender", "tenure", "MonthlyCharges"]] = ["Robot", "many", "-1"]

    result = validate(rows, spec)

    reasons = reasons_of(result)[0].split("; ")
    assert sorted(r.split(":")[0] for r in reasons) == ["MonthlyCharges", "gender", "tenure"]


FLOAT32_LIMIT = "finite_float32(|x| <= 3.4028235e+38)"


@pytest.mark.parametrize(
    ("text", "quoted"),
    [("inf", "inf"), ("+Infinity", "inf"), ("1e309", "inf"), ("1e300", "1e+300"), ("3.5e38", "3.5e+38")],
)
def test_a_number_that_is_infinite_or_beyond_float32_is_quarantined_naming_the_column(
    rows, spec, text, quoted
):
    rows.loc[6, "MonthlyCharges"] = text

    result = validate(rows, spec)

    assert quarantined_ids(result) == [rows.loc[6, ID]]
    assert reasons_of(result)[0] == f"MonthlyCharges: {quoted} fails {FLOAT32_LIMIT}"
    assert np.isfinite(result.valid["MonthlyCharges"]).all()


def test_the_largest_float32_itself_is_kept(rows, spec):
    rows.loc[6, "MonthlyCharges"] = repr(float(np.finfo(np.float32).max))

    result = validate(rows, spec)

    assert result.quarantined.empty
    assert result.valid.loc[6, "MonthlyCharges"] == np.finfo(np.float32).max


def test_an_infinite_value_of_a_typed_float_column_is_quarantined_too(rows, spec):
    # From Parquet or PostgreSQL the column arrives as floats, not text.
    rows["TotalCharges"] = pd.to_numeric(rows["TotalCharges"].str.strip().replace("", None))
    rows.loc[2, "TotalCharges"] = -np.inf

    result = validate(rows, spec)

    assert quarantined_ids(result) == [rows.loc[2, ID]]
    assert reasons_of(result) == [
        f"TotalCharges: -inf fails {FLOAT32_LIMIT}; TotalCharges: -inf fails greater_than_or_equal_to(0.0)"
    ]


def test_a_megabyte_value_is_cut_to_80_characters_in_its_reason(rows, spec):
    rows.loc[3, "PaymentMethod"] = "x" * 1_000_000
    rows.loc[4, "TotalCharges"] = "9" * 500 + "?"

    result = validate(rows, spec)

    payment, total = reasons_of(result)
    assert payment.startswith("PaymentMethod: '" + "x" * 78 + "'... (1,000,000 characters) fails isin([")
    assert len(payment) < 300
    assert total == "TotalCharges: not a number: '" + "9" * 78 + "'... (501 characters)"
    # The row as it arrived keeps the whole value.
    assert len(json.loads(result.quarantined.loc[0, "record"])["PaymentMethod"]) == 1_000_000


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Cheque", "'Cheque'"),
        ("y" * 78, "'" + "y" * 78 + "'"),  # 80 characters quoted: shown whole
        ("y" * 79, "'" + "y" * 78 + "'... (79 characters)"),  # cut before quoting: the quotes close
        (10**100, "1" + "0" * 79 + "... (101 characters)"),
    ],
)
def test_shown_quotes_a_value_whole_up_to_80_characters_then_cuts_it_with_its_length(value, expected):
    assert shown(value) == expected


@pytest.mark.parametrize(
    ("reasons", "kinds"),
    [
        # A value holding the separator, quoted by `shown`: still one reason, counted by its check.
        (
            "gender: " + shown("Male'; DROP TABLE customer_snapshots;--") + " fails isin(['Female', 'Male'])",
            ["gender: fails isin(['Female', 'Male'])"],
        ),
        (
            "tenure: not an integer: 'x; y'; " + duplicate_reason("customerID", "7590-VHVEG"),
            ["tenure: not an integer", "customerID: duplicate id"],
        ),
        (
            "PaymentMethod: " + shown("z" * 500 + "; ") + " fails isin(['Cheque'])",
            ["PaymentMethod: fails isin(['Cheque'])"],
        ),
        (
            "signup: datetime.date(1900, 1, 1) fails greater_than_or_equal_to(2000-01-01)",
            ["signup: fails greater_than_or_equal_to(2000-01-01)"],
        ),
        (
            "gender: is empty; customerID: no valid row in billing for this id",
            ["gender: is empty", "customerID: no valid row in billing for this id"],
        ),
    ],
)
def test_reasons_split_outside_quoted_values_and_count_by_check_not_by_value(reasons, kinds):
    assert [reason_kind(r) for r in split_reasons(reasons)] == kinds


def test_check_columns_names_missing_and_unknown_columns():
    with pytest.raises(IngestError) as caught:
        check_columns(["customerID", "Tenure", "gender"], ["customerID", "gender", "tenure"], "file b.csv")

    assert str(caught.value) == "file b.csv: missing column 'tenure'; unknown column 'Tenure'"


def test_check_columns_accepts_the_expected_columns_in_any_order():
    check_columns(["gender", "customerID"], ["customerID", "gender"], "file b.csv")


# One bad value per column, each failing a different check.
FAULTS = [
    ("customerID", "not-an-id"),
    ("gender", "Robot"),
    ("gender", ""),
    ("SeniorCitizen", "2"),
    ("tenure", "-1"),
    ("tenure", "3.5"),
    ("tenure", "ten"),
    ("Contract", "Weekly"),
    ("MonthlyCharges", "-0.01"),
    ("TotalCharges", "$20"),
    ("Churn", "Maybe"),
]
TELCO = pd.read_csv(TELCO_CSV, dtype="str", keep_default_na=False).head(SAMPLE)
SPEC = get_spec("churn")


@given(corruptions=st.dictionaries(st.integers(0, SAMPLE - 1), st.sampled_from(FAULTS)))
def test_exactly_the_corrupted_rows_are_quarantined(corruptions):
    rows = TELCO.copy()
    for i, (column, value) in corruptions.items():
        rows.loc[i, column] = value

    result = validate(rows, SPEC)

    assert len(result.valid) + len(result.quarantined) == SAMPLE
    assert sorted(result.quarantined["row_number"]) == sorted(corruptions)
    for row_number, reasons in zip(
        result.quarantined["row_number"], result.quarantined["reasons"], strict=True
    ):
        assert reasons.startswith(f"{corruptions[row_number][0]}: ")
    assert set(result.valid[ID]) == set(TELCO[ID].drop(index=list(corruptions)))


NUMBERISH = st.text(alphabet="0123456789+-.eE_, xnaifINFAtyT()", max_size=8)


@given(st.lists(NUMBERISH, min_size=1, max_size=20))
def test_a_number_column_takes_exactly_the_text_its_pattern_describes(values):
    rule = column_rules("MonthlyCharges", get_spec("churn").columns["MonthlyCharges"])

    typed, failed = rule.coerce(pa.array(values, pa.large_string()))

    for value, number, bad in zip(values, typed.to_pylist(), failed.to_pylist(), strict=True):
        text = value.strip()
        expected = float(text) if re.match(NUMBER, text) and not math.isnan(float(text)) else None
        assert number == expected, value
        assert bad == (bool(text) and expected is None), value


@pytest.mark.parametrize("value", [str(2**53 + 1), str(2**62), str(-(2**62))])
def test_an_integer_beyond_a_double_is_checked_against_the_range_not_a_failed_day(rows, spec, value):
    """tenure has min 0 and max 1200: an int64 beyond 2**53 compared with a float bound made Arrow
    refuse the comparison and fail the whole day."""
    rows.loc[2, "tenure"] = value
    [reason] = reasons_of(validate(rows, spec))
    check = "greater_than_or_equal_to(0" if value.startswith("-") else "less_than_or_equal_to(1200"
    assert re.fullmatch(rf"tenure: -?\d+ fails {re.escape(check)}.*", reason), reason
