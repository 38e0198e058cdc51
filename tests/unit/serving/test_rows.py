from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from include.scoring.score import to_frame
from include.serving.rows import (
    ValueRules,
    arrow_schema,
    probe_rows,
    request_model,
    row_model,
    rows_to_frame,
)
from include.usecases.spec import UseCase
from tools.testkit import validate_rows


def errors(model: type, row: dict) -> list[tuple[tuple, str]]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(row)
    return [(e["loc"], e["type"]) for e in caught.value.errors()]


def test_a_valid_row_passes_and_a_nullable_field_takes_null(spec: UseCase, request_rows) -> None:
    Row = row_model(spec)
    row = Row.model_validate({**request_rows[0], "TotalCharges": None, "customerID": "7590-VHVEG"})
    assert row.TotalCharges is None and row.customerID == "7590-VHVEG"
    assert Row.model_validate(request_rows[1]).customerID is None  # the entity id is optional


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"tenure": "12"}, [(("tenure",), "int_type")]),  # no coercion from text
        ({"tenure": 12.5}, [(("tenure",), "int_type")]),
        ({"tenure": 2**53}, [(("tenure",), "less_than_equal")]),  # beyond what a float64 holds exactly
        ({"MonthlyCharges": float("nan")}, [(("MonthlyCharges",), "finite_number")]),
        ({"MonthlyCharges": "70.5"}, [(("MonthlyCharges",), "float_type")]),
        ({"SeniorCitizen": True}, [(("SeniorCitizen",), "int_type")]),
        ({"Contract": 2}, [(("Contract",), "string_type")]),
        ({"gender": None}, [(("gender",), "string_type")]),  # not nullable
        ({"colour": "red"}, [(("colour",), "extra_forbidden")]),
    ],
)
def test_a_wrong_type_names_its_field(spec: UseCase, request_rows, change: dict, expected: list) -> None:
    assert errors(row_model(spec), {**request_rows[0], **change}) == expected


def value_problems(spec: UseCase, rows: list[dict]) -> list[tuple[int, str, str, str]]:
    typed = [row_model(spec).model_validate(row).__dict__ for row in rows]
    return [(p.row, p.field, p.type, p.message) for p in ValueRules.of(spec).problems(typed)]


FLOAT32 = "finite_float32(|x| <= 3.4028235e+38)"


@pytest.mark.parametrize(
    ("change", "kind", "message"),
    [
        # Issue #23, item 3: finite in float64, but beyond float32 (where the model's trees compare).
        ({"MonthlyCharges": 1e300}, "finite_float32", f"1e+300 fails {FLOAT32}"),
        ({"MonthlyCharges": -1e300}, "finite_float32", f"-1e+300 fails {FLOAT32}"),
        ({"MonthlyCharges": 1e39}, "finite_float32", f"1e+39 fails {FLOAT32}"),
        ({"TotalCharges": 3.5e38}, "finite_float32", f"3.5e+38 fails {FLOAT32}"),
        ({"MonthlyCharges": -0.01}, "greater_than_or_equal_to", "-0.01 fails greater_than_or_equal_to(0.0)"),
        ({"tenure": 1201}, "less_than_or_equal_to", "1201 fails less_than_or_equal_to(1200.0)"),
        ({"SeniorCitizen": 2}, "isin", "2 fails isin([0, 1])"),
        ({"Contract": "Weekly"}, "isin", "'Weekly' fails isin(['Month-to-month', 'One year', 'Two year'])"),
        ({"customerID": "not-an-id"}, "str_matches", "'not-an-id' fails str_matches('^[0-9]{4}-[A-Z]{5}$')"),
        ({"gender": ""}, "is_empty", "'' is empty"),  # ingest reads a blank as null
        ({"gender": " Male"}, "string_blanks", "' Male' has blanks around it: send 'Male' (ingest keeps"),
        ({"customerID": "\ud800"}, "string_unicode", "'\\ud800' is not Unicode text (a lone surrogate)"),
    ],
)
def test_a_value_ingest_would_not_keep_is_refused_with_ingests_reason(
    spec: UseCase, request_rows, change: dict, kind: str, message: str
) -> None:
    """The rules are ingest's (`include.ingest.checks.column_rules`), and so is the reason's text."""
    (row, field, found_kind, found_message), *more = value_problems(
        spec, [request_rows[0], {**request_rows[1], **change}]
    )
    assert (row, field, found_kind) == (1, next(iter(change)), kind)
    assert found_message.startswith(message)
    assert all(p[:2] == (1, field) for p in more)  # -1e+300 is also below the minimum


def test_every_value_problem_of_every_row_is_named_in_row_order(spec: UseCase, request_rows) -> None:
    rows = [dict(r) for r in request_rows[:3]]
    rows[2] |= {"tenure": -1, "MonthlyCharges": 1e300}
    rows[0] |= {"PaymentMethod": "Cash"}
    assert [p[:3] for p in value_problems(spec, rows)] == [
        (0, "PaymentMethod", "isin"),
        (2, "tenure", "greater_than_or_equal_to"),
        (2, "MonthlyCharges", "finite_float32"),
    ]
    assert value_problems(spec, request_rows[:50]) == []
    assert value_problems(spec, request_rows[:50]) == []  # again, from the values found good


VALUES = {
    "integer": st.integers(-(2**53) + 1, 2**53 - 1) | st.sampled_from([-1, 0, 1, 2, 72, 1200, 1201]),
    "float": st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([0.0, -0.0, -0.01, 3.4028235e38, 3.4028236e38, 1e39, 1e300, -1e300]),
    "string": st.sampled_from(["Yes", "No", "Male", "DSL", "Two year", "7590-VHVEG", "", " ", " Yes", "x"])
    | st.text(max_size=12),
}


@given(data=st.data())
@settings(max_examples=300)
def test_serving_refuses_a_value_exactly_when_ingest_would_not_keep_it(spec: UseCase, request_rows, data):
    """The service and ingest cannot drift apart: for any value of a field's JSON type, the service
    scores it only if ingest would keep it unchanged, and refuses it naming that field otherwise."""
    name = data.draw(st.sampled_from([*spec.features.all, spec.entity_id]))
    value = data.draw(VALUES[spec.columns[name].type])
    row = {**request_rows[0], "customerID": "7590-VHVEG", name: value}
    ingested = validate_rows(
        pd.DataFrame([{**row, "Churn": "No"}])[list(spec.columns)], spec.columns, spec.entity_id, "request"
    )
    kept = len(ingested.valid) == 1 and ingested.valid.iloc[0][name] == value
    refused = value_problems(spec, [row])
    assert {p[1] for p in refused} == (set() if kept else {name})


def test_a_missing_field_is_refused_even_when_nullable(spec: UseCase, request_rows) -> None:
    row = {k: v for k, v in request_rows[0].items() if k != "TotalCharges"}
    assert errors(row_model(spec), row) == [(("TotalCharges",), "missing")]


def test_a_request_holds_one_to_max_rows(spec: UseCase, request_rows) -> None:
    Request = request_model(spec, max_rows=3)
    assert len(Request.model_validate({"rows": request_rows[:3]}).rows) == 3
    assert errors(Request, {"rows": []}) == [(("rows",), "too_short")]
    assert errors(Request, {"rows": request_rows[:4]}) == [(("rows",), "too_long")]
    assert errors(Request, {"rows": request_rows[:1], "extra": 1}) == [(("extra",), "extra_forbidden")]


def test_rows_become_the_frame_batch_scoring_builds(spec: UseCase, request_rows) -> None:
    """The frame `to_frame` makes of an ingested partition's batch (pandas' str, Int64, float64)."""
    rows = request_rows[:50]
    typed = pd.DataFrame(rows)[list(spec.features.all)]
    for name in spec.features.all:
        kind = spec.columns[name].type
        typed[name] = typed[name].astype({"string": "str", "integer": "Int64", "float": "float64"}[kind])
    partition_batch = pa.RecordBatch.from_pandas(typed, preserve_index=False)
    assert partition_batch.schema.equals(arrow_schema(spec))
    pd.testing.assert_frame_equal(rows_to_frame(rows, spec), to_frame(partition_batch, spec.entity_id))


def test_probe_rows_are_valid_and_cover_every_allowed_value(spec: UseCase) -> None:
    probes = probe_rows(spec)
    Row = row_model(spec)
    typed = [Row.model_validate(probe).__dict__ for probe in probes]
    assert ValueRules.of(spec).problems(typed) == []
    assert {p["PaymentMethod"] for p in probes} == set(spec.columns["PaymentMethod"].allowed)
    assert None in {p["TotalCharges"] for p in probes}
