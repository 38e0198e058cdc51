"""Row validation against a use case's schema: typed rows kept, bad rows quarantined with reasons.

Structural problems (a missing or unknown column) raise `IngestError`; row problems (a wrong type,
a value outside the allowed set or range, a null, a duplicate id) send the row to quarantine.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass

import pandas as pd
import pandera.pandas as pa

from include.usecases.spec import Column

QUARANTINE_COLUMNS = ["source", "row_number", "entity_id", "reasons", "record"]
PANDAS_DTYPES = {
    "string": "str",
    "integer": "Int64",
    "float": "float64",
    "boolean": "boolean",
    "date": "datetime64[us]",
    "datetime": "datetime64[us, UTC]",
}
TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "float": "a number",
    "boolean": "a boolean",
    "date": "a date",
    "datetime": "a date-time",
}
BOOLEAN_WORDS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


class IngestError(ValueError):
    """A partition that cannot be ingested; the message names the source, column and date."""


@dataclass(frozen=True)
class Validated:
    """One source's rows split into typed valid rows and quarantined rows."""

    valid: pd.DataFrame
    quarantined: pd.DataFrame


def check_columns(actual: list[str], expected: list[str], where: str) -> None:
    """Fail on a missing or unknown column, naming each."""
    missing = [c for c in expected if c not in actual]
    unknown = [c for c in actual if c not in expected]
    problems = [f"missing column {c!r}" for c in missing] + [f"unknown column {c!r}" for c in unknown]
    if problems:
        raise IngestError(f"{where}: {'; '.join(problems)}")


def _blank_to_na(series: pd.Series) -> pd.Series:
    if series.dtype == object or pd.api.types.is_string_dtype(series):
        text = series.astype("str").str.strip()
        return text.mask(text == "")
    return series


def coerce_column(series: pd.Series, column: Column) -> tuple[pd.Series, pd.Series]:
    """The column converted to its declared type, and a mask of values that could not be."""
    raw = _blank_to_na(series)
    if column.type == "string":
        typed = raw.astype("str")
    elif column.type in ("integer", "float"):
        numbers = pd.to_numeric(raw, errors="coerce")
        if column.type == "integer":
            fractional = numbers.notna() & (numbers % 1 != 0)
            numbers = numbers.mask(fractional).astype("Float64").astype("Int64")
        typed = numbers if column.type == "integer" else numbers.astype("float64")
    elif column.type == "boolean":
        typed = raw.astype("str").str.lower().map(BOOLEAN_WORDS).astype("boolean")
    else:
        typed = pd.to_datetime(raw, errors="coerce", utc=column.type == "datetime")
        typed = typed.astype(PANDAS_DTYPES[column.type])
    failed = raw.notna() & typed.isna()
    return typed, failed


def _row_checks(name: str, column: Column, unique: bool) -> pa.Column:
    checks = []
    if column.allowed is not None:
        checks.append(pa.Check.isin(list(column.allowed)))
    if column.min is not None:
        checks.append(pa.Check.ge(column.min))
    if column.max is not None:
        checks.append(pa.Check.le(column.max))
    if column.pattern is not None:
        checks.append(pa.Check.str_matches(column.pattern))
    return pa.Column(None, checks=checks, nullable=column.nullable, unique=unique, name=name)


def _describe_failure(column: str, check: str, value) -> str:
    # pandera hands back NumPy scalars; their repr (`np.int64(-4)`) is not what the source sent.
    value = value.item() if hasattr(value, "item") else value
    if check == "not_nullable":
        return f"{column}: is empty"
    if check == "field_uniqueness":
        return f"{column}: duplicate id {value!r}"
    return f"{column}: {value!r} fails {check}"


def validate_rows(frame: pd.DataFrame, columns: dict[str, Column], entity_id: str, source: str) -> Validated:
    """Type and check every row of one source; the frame must already have the right columns."""
    frame = frame.reset_index(drop=True)
    reasons: dict[int, list[str]] = defaultdict(list)
    uncoercible: set[tuple[int, str]] = set()
    typed = {}
    for name, column in columns.items():
        typed[name], failed = coerce_column(frame[name], column)
        for i in failed[failed].index:
            reasons[i].append(f"{name}: not {TYPE_NAMES[column.type]}: {frame.at[i, name]!r}")
            uncoercible.add((i, name))
    typed_frame = pd.DataFrame(typed)
    schema = pa.DataFrameSchema({n: _row_checks(n, c, unique=n == entity_id) for n, c in columns.items()})
    try:
        schema.validate(typed_frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        for case in exc.failure_cases.itertuples():
            if pd.isna(case.index):
                raise IngestError(f"source {source}: column {case.column!r}: {case.failure_case}") from exc
            row = int(case.index)
            # A value that could not be typed is null now: it was reported once already.
            if (row, case.column) not in uncoercible:
                reasons[row].append(_describe_failure(case.column, case.check, case.failure_case))
    bad = sorted(reasons)
    quarantined = quarantine_frame(frame.loc[bad], source, entity_id, [reasons[i] for i in bad])
    return Validated(typed_frame.drop(index=bad).reset_index(drop=True), quarantined)


def quarantine_frame(
    rows: pd.DataFrame, source: str, entity_id: str, reasons: list[list[str]]
) -> pd.DataFrame:
    """Rows as they arrived, with where they came from and why they were set aside."""
    plain = rows.astype(object).where(rows.notna(), None)
    records = [json.dumps(r, default=str) for r in plain.to_dict("records")]
    return pd.DataFrame(
        {
            "source": pd.Series([source] * len(rows), dtype="str"),
            "row_number": pd.Series(rows.index, dtype="int64"),
            "entity_id": pd.Series(rows[entity_id].astype("str").to_numpy(), dtype="str"),
            "reasons": pd.Series(["; ".join(r) for r in reasons], dtype="str"),
            "record": pd.Series(records, dtype="str"),
        },
        columns=QUARANTINE_COLUMNS,
    )
