from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest
from pydantic import ValidationError

from include.scoring.score import to_frame
from include.serving.rows import arrow_schema, probe_rows, request_model, row_model, rows_to_frame
from include.usecases.spec import UseCase


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
        ({"tenure": 1201}, [(("tenure",), "less_than_equal")]),  # spec max 1200
        ({"MonthlyCharges": -0.01}, [(("MonthlyCharges",), "greater_than_equal")]),
        ({"MonthlyCharges": float("nan")}, [(("MonthlyCharges",), "finite_number")]),
        ({"SeniorCitizen": 2}, [(("SeniorCitizen",), "literal_error")]),  # allowed: 0, 1
        ({"SeniorCitizen": True}, [(("SeniorCitizen",), "int_type")]),
        ({"Contract": "Weekly"}, [(("Contract",), "literal_error")]),
        ({"gender": None}, [(("gender",), "literal_error")]),  # not nullable
        ({"customerID": "not-an-id"}, [(("customerID",), "string_pattern_mismatch")]),
        ({"colour": "red"}, [(("colour",), "extra_forbidden")]),
    ],
)
def test_a_bad_value_names_its_field(spec: UseCase, request_rows, change: dict, expected: list) -> None:
    assert errors(row_model(spec), {**request_rows[0], **change}) == expected


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
    for probe in probes:
        Row.model_validate(probe)
    assert {p["PaymentMethod"] for p in probes} == set(spec.columns["PaymentMethod"].allowed)
    assert None in {p["TotalCharges"] for p in probes}
