"""A second use case's source, for the README's "Adding a use case": subscribers of a streaming service.

One SQL table, `subscribers`, holds a snapshot of the day's accounts: a date (`signup_date`), a plan,
a fee, support calls, autopay written `true`/`false`, and the 0/1 label `cancelled`, drawn from a
known logistic model so a trained model has something real to find. Deterministic for a seed.

    python -m tools.demo.subscriptions --conn subscriptions_db --first 2025-03-01 --days 28
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging

import numpy as np
import pandas as pd
import sqlalchemy as sa

log = logging.getLogger(__name__)

TABLE = "subscribers"
PLANS = ("basic", "standard", "premium")
FEES = {"basic": 8.0, "standard": 14.0, "premium": 21.0}


def subscribers(first: dt.date, days: int, rows_per_day: int, seed: int = 7) -> pd.DataFrame:
    """`rows_per_day` accounts per day over `days` days from `first`, with their labels."""
    rng = np.random.default_rng(seed)
    n = days * rows_per_day
    snapshot = np.repeat([first + dt.timedelta(days=d) for d in range(days)], rows_per_day)
    plan = rng.choice(PLANS, n, p=[0.5, 0.35, 0.15])
    fee = np.array([FEES[p] for p in plan]) + rng.normal(0, 1.5, n).round(2)
    calls = rng.poisson(1.2, n)
    autopay = rng.random(n) < 0.6
    tenure_days = rng.integers(1, 900, n)
    logit = -1.4 + 0.75 * calls - 1.3 * autopay + 0.9 * (plan == "basic") - 0.002 * tenure_days
    cancelled = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame(
        {
            "account_id": [f"A{i:06d}" for i in rng.permutation(n)],
            "snapshot_date": snapshot,
            "signup_date": [
                s - dt.timedelta(days=int(t)) for s, t in zip(snapshot, tenure_days, strict=True)
            ],
            "plan": plan,
            "monthly_fee": fee.clip(0),
            "support_calls": calls,
            "autopay": np.where(autopay, "true", "false"),
            "cancelled": cancelled,
        }
    )


def seed_subscribers(engine: sa.Engine, frame: pd.DataFrame) -> None:
    """Replace the `subscribers` table with `frame` (dates stored as dates)."""
    dtypes = {"snapshot_date": sa.Date(), "signup_date": sa.Date()}
    frame.to_sql(TABLE, engine, if_exists="replace", index=False, dtype=dtypes)
    log.info(
        "seeded %d subscribers over %d days into %s", len(frame), frame["snapshot_date"].nunique(), TABLE
    )


def main() -> None:
    from include.io.connections import engine_for

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conn", default="subscriptions_db", help="the source's connection id")
    parser.add_argument("--first", type=dt.date.fromisoformat, default=dt.date(2025, 3, 1))
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--rows", type=int, default=150, help="accounts per day")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    seed_subscribers(engine_for(args.conn), subscribers(args.first, args.days, args.rows))


if __name__ == "__main__":
    main()
