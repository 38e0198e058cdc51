"""What ingest's validation raises and writes: the structural error, the column check, a raw row as JSON.

Structural problems (a missing or unknown column) raise `IngestError`; row problems (a wrong type,
a value outside the allowed set or range, a null, a duplicate id) send the row to quarantine. The
checks themselves live in `include.ingest.checks`; the streamed day runs them batch by batch
(`include.ingest.stage`).
"""

from __future__ import annotations

import json
import math

from include.ingest.parquet import QUARANTINE_COLUMNS

__all__ = ["QUARANTINE_COLUMNS", "IngestError", "check_columns", "record_json"]


class IngestError(ValueError):
    """A partition that cannot be ingested; the message names the source, column and date."""


def check_columns(actual: list[str], expected: list[str], where: str) -> None:
    """Fail on a missing, unknown or repeated column, naming each."""
    missing = [c for c in expected if c not in actual]
    unknown = [c for c in actual if c not in expected]
    repeated = sorted({c for c in actual if actual.count(c) > 1})
    problems = [f"missing column {c!r}" for c in missing] + [f"unknown column {c!r}" for c in unknown]
    problems += [f"column {c!r} appears {actual.count(c)} times" for c in repeated]
    if problems:
        raise IngestError(f"{where}: {'; '.join(problems)}")


def record_json(row: dict) -> str:
    """A row as it arrived, as JSON (nulls and NaN as null)."""
    plain = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
    return json.dumps(plain, default=str)
