"""Seed the demo sources from the real Telco data, deterministically.

The 7,043 customers are spread over 90 snapshot dates (2025-01-01 .. 2025-03-31) by a hash of their id,
and their columns split the way a company's systems would hold them: profile, services, contract
and label in a SQL table (`customer_snapshots`), billing as one CSV per day under `billing/ds=.../`.
Each customer's churn outcome is also observed `OUTCOME_AFTER` days after the snapshot, in a table of
its own (`customer_outcomes`, by `observed_date`): the shipped label, known later, as it would be.

The last week of March drifts on purpose, so the demo shows the drift -> retrain loop: from
2025-03-25 (`DRIFT_FROM`) every customer's `MonthlyCharges` is 25 % higher (`DRIFT_FACTOR`, rounded
to cents, as after a price rise). Everything else is the shipped data.

    python -m tools.demo.seed [--db-conn churn_source_db] [--files-conn churn_source_files]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import io
import logging
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from include.io.stores import ObjectStore
from include.usecases.spec import UseCase, get_spec

log = logging.getLogger(__name__)

TELCO_CSV = Path(__file__).resolve().parents[2] / "data" / "telco_customer_churn.csv"
FIRST_DAY = dt.date(2025, 1, 1)
N_DAYS = 90
INTEGER_COLUMNS = ("SeniorCitizen", "tenure")
DRIFT_FROM = dt.date(2025, 3, 25)
DRIFT_COLUMN, DRIFT_FACTOR = "MonthlyCharges", 1.25
OUTCOME_AFTER = dt.timedelta(days=7)


def demo_dates(first: dt.date = FIRST_DAY, n_days: int = N_DAYS) -> list[dt.date]:
    """The snapshot dates, one per day."""
    return [first + dt.timedelta(days=i) for i in range(n_days)]


def assign_days(ids: pd.Series, dates: list[dt.date]) -> pd.Series:
    """Each id's snapshot date, from a hash of the id: the same on every machine and every run."""
    slots = ids.map(lambda i: int(hashlib.sha256(i.encode()).hexdigest()[:12], 16) % len(dates))
    return slots.map(dict(enumerate(dates)))


def load_telco(path: Path = TELCO_CSV) -> pd.DataFrame:
    """The shipped data, every value as the text it is in the file (blanks kept)."""
    return pd.read_csv(path, dtype="str", keep_default_na=False)


def split_sources(
    spec: UseCase, telco: pd.DataFrame, dates: list[dt.date]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The SQL table's rows and the billing rows, both with the snapshot date; billing drifts from
    `DRIFT_FROM` on (module doc)."""
    sql_source, files_source = spec.source("snapshots"), spec.source("billing")
    days = assign_days(telco[spec.entity_id], dates)
    snapshots = telco[list(sql_source.columns)].assign(**{sql_source.date_column: days})
    for column in INTEGER_COLUMNS:
        snapshots[column] = snapshots[column].astype(int)
    billing = telco[list(files_source.columns)].assign(ds=days)
    drifting = billing["ds"] >= DRIFT_FROM
    raised = (billing.loc[drifting, DRIFT_COLUMN].astype(float) * DRIFT_FACTOR).round(2)
    billing.loc[drifting, DRIFT_COLUMN] = raised.map(lambda value: f"{value:g}")
    return snapshots, billing


def seed_table(engine: sa.Engine, spec: UseCase, snapshots: pd.DataFrame) -> None:
    """Replace the source table in one transaction."""
    source = spec.source("snapshots")
    types = {c: sa.Integer() if c in INTEGER_COLUMNS else sa.Text() for c in source.columns}
    types[source.date_column] = sa.Date()
    with engine.begin() as conn:
        snapshots.to_sql(source.table, conn, if_exists="replace", index=False, dtype=types, chunksize=2000)


def seed_files(store: ObjectStore, spec: UseCase, billing: pd.DataFrame) -> int:
    """Write one CSV per day under the billing prefix; returns the number of files."""
    source = spec.source("billing")
    for day, rows in billing.groupby("ds", sort=True):
        buffer = io.StringIO()
        rows.drop(columns="ds").to_csv(buffer, index=False)
        key = source.prefix.format(ds=day.isoformat()) + "billing.csv"
        store.put_bytes(key, buffer.getvalue().encode())
    return billing["ds"].nunique()


def seed_outcomes(engine: sa.Engine, spec: UseCase, snapshots: pd.DataFrame) -> int:
    """Replace the outcomes table: each snapshot's label, observed `OUTCOME_AFTER` later; its rows."""
    if spec.outcomes is None:
        return 0
    source, snapshot_day = spec.outcomes.source, spec.source("snapshots").date_column
    observed = snapshots[[spec.entity_id, spec.label.column]].assign(
        **{source.date_column: snapshots[snapshot_day] + OUTCOME_AFTER}
    )
    types = {c: sa.Text() for c in source.columns} | {source.date_column: sa.Date()}
    with engine.begin() as conn:
        observed.to_sql(source.table, conn, if_exists="replace", index=False, dtype=types, chunksize=2000)
    return len(observed)


def seed(engine: sa.Engine, store: ObjectStore, spec: UseCase | None = None) -> dict[str, int]:
    """Seed every source; returns what was written."""
    spec = spec or get_spec("churn")
    snapshots, billing = split_sources(spec, load_telco(), demo_dates())
    seed_table(engine, spec, snapshots)
    files = seed_files(store, spec, billing)
    outcomes = seed_outcomes(engine, spec, snapshots)
    log.info("seeded %d snapshot rows, %d billing files and %d outcomes", len(snapshots), files, outcomes)
    return {
        "rows": len(snapshots),
        "days": snapshots[spec.source("snapshots").date_column].nunique(),
        "files": files,
        "outcomes": outcomes,
    }


def main() -> None:
    from include.io.connections import engine_for, store_for

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db-conn", default="churn_source_db", help="connection id of the source database")
    parser.add_argument(
        "--files-conn", default="churn_source_files", help="connection id of the source bucket"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    counts = seed(engine_for(args.db_conn), store_for(args.files_conn))
    log.info("seeded: %s", counts)


if __name__ == "__main__":
    main()
