"""Row validation against a use case's schema: typed rows kept, bad rows quarantined with reasons.

Structural problems (a missing or unknown column) raise `IngestError`; row problems (a wrong type,
a value outside the allowed set or range, a null, a duplicate id) send the row to quarantine. The
checks themselves live in `include.ingest.checks`; `validate_rows` runs them on a small frame held
in memory (the streamed day runs them batch by batch, `include.ingest.stage`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from include.ingest.checks import check_batch, duplicate_reason, source_rules
from include.ingest.parquet import QUARANTINE_COLUMNS, QUARANTINE_SCHEMA, typed_schema
from include.usecases.spec import Column

__all__ = ["QUARANTINE_COLUMNS", "IngestError", "Validated", "check_columns", "record_json", "validate_rows"]


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


def validate_rows(frame: pd.DataFrame, columns: dict[str, Column], entity_id: str, source: str) -> Validated:
    """Type and check every row of one source held in memory; the frame must have the right columns."""
    frame = frame.reset_index(drop=True)
    batch = pa.RecordBatch.from_arrays([_arrow(frame[c]) for c in columns], names=list(columns))
    checked = check_batch(batch, source_rules(columns), entity_id)
    ids = checked.typed[entity_id]
    counts = pa.table({"id": ids}).group_by("id").aggregate([("id", "count")])
    repeated = counts.filter(pc.greater(counts["id_count"], 1))["id"]
    duplicate = pc.fill_null(pc.is_in(ids, repeated), False).to_pylist()
    rows, reasons = [], []
    heads, tails = checked.head.to_pylist(), checked.tail.to_pylist()
    for i, (head, tail, dup) in enumerate(zip(heads, tails, duplicate, strict=True)):
        parts = [head, duplicate_reason(entity_id, ids[i].as_py()) if dup else None, tail]
        if any(parts):
            rows.append(i)
            reasons.append("; ".join(p for p in parts if p))
    bad = set(rows)
    keep = pa.array([i not in bad for i in range(len(frame))])
    valid = pa.Table.from_arrays(list(checked.typed.values()), schema=typed_schema(columns))
    raw = batch.take(pa.array(rows, pa.int64())).to_pylist()
    quarantined = pa.Table.from_arrays(
        [
            pa.array([source] * len(rows), pa.large_string()),
            pa.array(rows, pa.int64()),
            pa.nulls(len(rows), pa.large_string()),
            pa.nulls(len(rows), pa.int64()),
            pa.array([None if r[entity_id] is None else str(r[entity_id]) for r in raw], pa.large_string()),
            pa.array(reasons, pa.large_string()),
            pa.array([record_json(r) for r in raw], pa.large_string()),
        ],
        schema=QUARANTINE_SCHEMA,
    )
    return Validated(valid.filter(keep).to_pandas(), quarantined.to_pandas())


def record_json(row: dict) -> str:
    """A row as it arrived, as JSON (nulls and NaN as null)."""
    plain = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
    return json.dumps(plain, default=str)


def _arrow(series: pd.Series) -> pa.Array:
    """A column as Arrow; one mixing types (text and numbers) as text."""
    try:
        return pa.array(series, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if pd.isna(v) else str(v) for v in series], pa.large_string())
