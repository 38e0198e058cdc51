"""Seed the worked examples' source tables from the shipped data, deterministically.

- `hotel_rates` (regression): every booking of `data/hotel_rates.csv` in a SQL table `bookings`,
  numbered `B00000`.. in file order, on its real arrival date.
- `hpc_jobs` (multiclass): every job of `data/hpc_jobs.csv` in a SQL table `jobs`, numbered
  `J00000`.. in file order; the file has no dates, so each job is given a submission day among
  `HPC_DAYS` days from `HPC_FIRST_DAY` by a hash of its number (the same on every machine).

    python -m tools.examples.seed hotel_rates|hpc_jobs --db-conn <conn id>
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import logging
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

log = logging.getLogger(__name__)

DATA = Path(__file__).resolve().parents[2] / "data"
SPECS = Path(__file__).resolve().parent
HPC_FIRST_DAY, HPC_DAYS = dt.date(2025, 1, 1), 60


def example_spec(name: str) -> Path:
    """The worked example's spec file (`hotel_rates` or `hpc_jobs`)."""
    return SPECS / f"{name}.yaml"


def hotel_rows() -> pd.DataFrame:
    """The bookings as the source table holds them: an id, the arrival date as ISO text, the rest."""
    frame = pd.read_csv(DATA / "hotel_rates.csv").drop(columns=["arrival_date_num"])
    frame.insert(0, "booking_id", [f"B{n:05d}" for n in range(len(frame))])
    return frame


def hpc_rows() -> pd.DataFrame:
    """The jobs as the source table holds them: an id, a submission day (module doc), the rest."""
    frame = pd.read_csv(DATA / "hpc_jobs.csv")
    ids = [f"J{n:05d}" for n in range(len(frame))]
    slots = [int(hashlib.sha256(i.encode()).hexdigest()[:12], 16) % HPC_DAYS for i in ids]
    frame.insert(0, "job_id", ids)
    frame["submitted_date"] = [(HPC_FIRST_DAY + dt.timedelta(days=s)).isoformat() for s in slots]
    return frame


TABLES = {"hotel_rates": ("bookings", hotel_rows), "hpc_jobs": ("jobs", hpc_rows)}


def seed(name: str, engine: sa.Engine) -> int:
    """(Re)write the example's source table; the rows written."""
    table, rows = TABLES[name]
    frame = rows()
    frame.to_sql(table, engine, if_exists="replace", index=False, chunksize=5000)
    log.info("%s: %d rows in %s", name, len(frame), table)
    return len(frame)


def main() -> None:
    from include.io.connections import engine_for

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=sorted(TABLES))
    parser.add_argument("--db-conn", required=True, help="the Airflow connection of the source database")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    seed(args.name, engine_for(args.db_conn))


if __name__ == "__main__":
    main()
