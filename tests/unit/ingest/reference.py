"""The in-memory ingest the streamed one replaced: pandas and pandera over the whole day at once.

Kept as the reference the streamed path is compared with on random days (`test_streamed.py`): the
same typed rows, quarantine rows, reasons and counts. Two changes from the code as it ran, both where
it broke its own contract:
- a failed integer is shown as an integer (`tenure: -4 fails ...`): pandera gathered every column's
  failures in one column, so an integer showed as `-4.0` on a day when no text value failed;
- a row with no partner in another source is quarantined with its row number in the source and the
  row as it arrived, like every other quarantined row; it had its position among the source's valid
  rows (the same number unless some rows of that source failed their checks) and its typed values.

And one rule added since (issue #12, finding 1): a float column's values must be finite and within
float32's range (checked after the allowed values, before the range).
"""

from __future__ import annotations

import json
from collections import defaultdict
from functools import reduce

import numpy as np
import pandas as pd
import pandera.pandas as pa

from include.ingest.validate import IngestError
from include.usecases.spec import Column, UseCase

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


def _blank_to_na(series: pd.Series) -> pd.Series:
    if series.dtype == object or pd.api.types.is_string_dtype(series):
        text = series.astype("str").str.strip()
        return text.mask(text == "")
    return series


def coerce_column(series: pd.Series, column: Column) -> tuple[pd.Series, pd.Series]:
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
    if column.type == "float":
        bound = float(np.finfo(np.float32).max)
        checks.append(pa.Check(lambda s: s.abs() <= bound, name=f"finite_float32(|x| <= {bound:.8g})"))
    if column.min is not None:
        checks.append(pa.Check.ge(column.min))
    if column.max is not None:
        checks.append(pa.Check.le(column.max))
    if column.pattern is not None:
        checks.append(pa.Check.str_matches(column.pattern))
    return pa.Column(None, checks=checks, nullable=column.nullable, unique=unique, name=name)


def _describe_failure(column: str, check: str, value, kind: str) -> str:
    value = value.item() if hasattr(value, "item") else value
    if kind == "integer" and isinstance(value, float):
        value = int(value)
    if check == "not_nullable":
        return f"{column}: is empty"
    if check == "field_uniqueness":
        return f"{column}: duplicate id {value!r}"
    return f"{column}: {value!r} fails {check}"


def quarantine_frame(
    rows: pd.DataFrame, source: str, entity_id: str, reasons: list[list[str]]
) -> pd.DataFrame:
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


def validate_rows(frame: pd.DataFrame, columns: dict[str, Column], entity_id: str, source: str):
    """(typed valid rows, quarantined rows) of one source."""
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
            row = int(case.index)
            if (row, case.column) not in uncoercible:
                kind = columns[case.column].type
                reasons[row].append(_describe_failure(case.column, case.check, case.failure_case, kind))
    bad = sorted(reasons)
    quarantined = quarantine_frame(frame.loc[bad], source, entity_id, [reasons[i] for i in bad])
    return typed_frame.drop(index=bad), quarantined


def _fault(reasons: str, key: str) -> str:
    """A quarantined row's first fault: its column, or what is wrong with the entity id."""
    first = reasons.split("; ", maxsplit=1)[0]
    if first.startswith((f"{key}: duplicate id", f"{key}: no valid row in")):
        return first.split(" for this id")[0] if "no valid row" in first else f"{key}: duplicate id"
    return first.split(": ")[0]


def build_day(spec: UseCase, ds: str, raw: dict[str, pd.DataFrame]):
    """(partition, quarantine, counts) of one day, or the `IngestError` the day fails with."""
    key = spec.entity_id
    valid, quarantined, failed_checks = {}, {}, {}
    raw = {name: frame.reset_index(drop=True) for name, frame in raw.items()}
    for name, frame in raw.items():
        if frame.empty:
            raise IngestError(f"source {name}, ds={ds}: no rows for the day")
        checked_valid, checked_bad = validate_rows(
            frame, {c: spec.columns[c] for c in frame.columns}, key, name
        )
        valid[name], quarantined[name] = checked_valid, [checked_bad]
        failed_checks[name] = len(checked_bad)
    joined = reduce(lambda left, right: left.merge(right, on=key, how="inner"), valid.values())
    matched = pd.Index(joined[key])
    for name, frame in valid.items():
        unmatched = frame[matched.get_indexer(frame[key]) < 0]
        others = ", ".join(n for n in valid if n != name)
        reason = [[f"{key}: no valid row in {others} for this id"]] * len(unmatched)
        quarantined[name].append(quarantine_frame(raw[name].loc[unmatched.index], name, key, reason))
    quarantine = pd.concat([q for parts in quarantined.values() for q in parts], ignore_index=True)
    counts = {
        "read": {n: len(f) for n, f in raw.items()},
        "quarantined": {n: int((quarantine["source"] == n).sum()) for n in raw},
        "written": len(joined),
    }
    for name in sorted(counts["read"], key=lambda n: -failed_checks[n]):
        read, bad = counts["read"][name], counts["quarantined"][name]
        share = bad / read
        if share > spec.ingest.max_quarantine_fraction:
            top = quarantine.loc[quarantine["source"] == name, "reasons"].map(lambda r: _fault(r, key))
            common = ", ".join(f"{c} ({n})" for c, n in top.value_counts().head(3).items())
            raise IngestError(
                f"source {name}, ds={ds}: {bad} of {read} rows failed "
                f"validation ({share:.0%} > max {spec.ingest.max_quarantine_fraction:.0%}); "
                f"most common faults: {common}"
            )
    frame = joined[list(spec.columns)].assign(ds=pd.Timestamp(ds).as_unit("us"))
    return frame.sort_values(key, ignore_index=True), quarantine, counts
