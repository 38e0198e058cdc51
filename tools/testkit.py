"""Helpers the tests, the bench and the reliability suite share, kept out of the product package.

- `write_changed_spec`: a copy of a shipped spec with some values changed, for `PLATFORM_SPEC_DIR`;
- `version_of_day`: a registry entry for a model that no training run made (a bench's, a test's);
- `validate_rows`: ingest's row checks (`include.ingest.checks`) on a small frame held in memory,
  typed rows kept and bad rows quarantined, as the streamed day does batch by batch.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import yaml

from include.ingest.checks import check_batch, duplicate_reason, source_rules
from include.ingest.parquet import QUARANTINE_SCHEMA, typed_schema
from include.ingest.validate import record_json
from include.registry.registry import NewVersion
from include.usecases.spec import SPEC_DIR, Column


def write_changed_spec(folder: Path, changes: dict[str, dict[str, object]], name: str = "churn") -> Path:
    """A copy of the shipped spec `name` in `folder`, each section named in `changes` updated with its
    values (`{"scoring": {"batch_rows": 40}}`); returns the folder, for `PLATFORM_SPEC_DIR`."""
    raw = yaml.safe_load((SPEC_DIR / f"{name}.yaml").read_text())
    for section, values in changes.items():
        raw.setdefault(section, {}).update(values)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return folder


# The churn outcomes table a test seeds in its own SQLite source (`churn_outcomes_db`).
OUTCOMES_TABLE = "churn_outcomes"


def churn_outcomes(maturity_days: int, **settings: object) -> dict[str, object]:
    """A churn spec's `outcomes` section: the label observed in `OUTCOMES_TABLE` by `observed_date`
    (connection `churn_outcomes_db`), matured after `maturity_days`, with any other `settings`."""
    source = {
        "name": "outcomes",
        "kind": "sql",
        "conn_id": "churn_outcomes_db",
        "table": OUTCOMES_TABLE,
        "date_column": "observed_date",
        "columns": ["customerID", "Churn"],
    }
    return {"source": source, "maturity_days": maturity_days, **settings}


def version_of_day(
    use_case: str, run_id: str, ds: dt.date, *, family: str, artifact_uri: str, sha256: str, **fields: Any
) -> NewVersion:
    """A version registered without a training run (a bench's model, a test's, a race's stand-in):
    window and holdout are the day `ds`; no parameters, metrics, trials or reference unless given."""
    one_day = {"window_start": ds, "window_end": ds, "holdout_start": ds, "holdout_end": ds}
    empty = {"params": {}, "metrics": {}, "cv_metrics": {}, "trials": [], "library_versions": {}}
    defaults = {**one_day, **empty, "threshold": 0.5, "reference": None, "code_version": "none"}
    return NewVersion(
        use_case=use_case,
        run_id=run_id,
        ds=ds,
        family=family,
        artifact_uri=artifact_uri,
        sha256=sha256,
        **{**defaults, **fields},
    )


@dataclass(frozen=True)
class Validated:
    """One source's rows split into typed valid rows and quarantined rows."""

    valid: pd.DataFrame
    quarantined: pd.DataFrame


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


def _arrow(series: pd.Series) -> pa.Array:
    """A column as Arrow; one mixing types (text and numbers) as text."""
    try:
        return pa.array(series, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if pd.isna(v) else str(v) for v in series], pa.large_string())
