"""The gate's backtest: the candidate and the champion judged on matured days by their outcomes.

The days are the holdout's (the candidate never fitted on them) whose outcomes have matured by the
training run's day `ds`: scored on or before `ds - outcomes.maturity_days`, at most the last
`gate.backtest.days` of them. Each row of those days takes its entity's judging outcome observed up to
`ds` (`include.monitoring.outcomes`), never later, so a backfilled run reads nothing after its day.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from include.training.compare import Bound, Scored, metric_bounds
from include.training.metrics import evaluate_outputs
from include.training.split import DATE_COLUMN

if TYPE_CHECKING:
    import sqlalchemy as sa

    from include.usecases.spec import UseCase

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class BacktestDay:
    """One matured day: rows with an outcome, each model's primary metric, the candidate's gain."""

    ds: dt.date
    rows: int
    candidate: float | None
    champion: float | None


@dataclasses.dataclass(frozen=True)
class Backtest:
    """The backtest's days (`first` .. `last`), each day's figures, and the pooled paired gain of the
    primary metric with its bounds (None when no row had matured)."""

    first: dt.date
    last: dt.date
    days: tuple[BacktestDay, ...]
    gain: Bound | None

    @property
    def rows(self) -> int:
        return sum(day.rows for day in self.days)

    def to_dict(self) -> dict[str, Any]:
        return {
            "first": self.first.isoformat(),
            "last": self.last.isoformat(),
            "days": [{**dataclasses.asdict(d), "ds": d.ds.isoformat()} for d in self.days],
            "gain": None if self.gain is None else self.gain.to_dict(),
        }


def backtest_range(spec: UseCase, ds: dt.date, holdout_start: dt.date) -> tuple[dt.date, dt.date]:
    """The days a run on `ds` backtests on (empty when `first > last`)."""
    assert spec.outcomes is not None and spec.gate.backtest is not None
    last = ds - dt.timedelta(days=spec.outcomes.maturity_days)
    return max(holdout_start, last - dt.timedelta(days=spec.gate.backtest.days - 1)), last


def matured_rows(
    spec: UseCase, holdout: pd.DataFrame, platform: sa.Engine, ds: dt.date, first: dt.date, last: dt.date
) -> pd.DataFrame:
    """The holdout's rows of the days in [first, last] whose entity has a judging outcome observed by
    `ds`, the label column holding that outcome."""
    from include.monitoring.outcomes import OBSERVED_COLUMNS, earliest_outcomes
    from include.platform.queries import observed_outcomes

    with platform.connect() as conn:
        observed = pd.DataFrame(observed_outcomes(conn, spec.name, first, ds), columns=OBSERVED_COLUMNS)
    days = pd.to_datetime(holdout[DATE_COLUMN]).dt.date
    label, entity = spec.label.column, spec.entity_id
    parts = []
    for day in sorted(set(days[(days >= first) & (days <= last)])):
        rows = holdout[days == day].drop(columns=[label])
        outcomes = earliest_outcomes(observed, day).rename(columns={"entity_id": entity, "outcome": label})
        parts.append(rows.merge(outcomes, on=entity, how="inner"))
    return pd.concat(parts, ignore_index=True) if parts else holdout.iloc[:0]


def backtest(
    spec: UseCase,
    rows: pd.DataFrame,
    y: np.ndarray,
    candidate: Scored,
    champion: Scored,
    first: dt.date,
    last: dt.date,
    seed: int,
) -> Backtest:
    """Each matured day's primary metric for both models, and their pooled paired gain."""
    primary, gate = spec.gate.primary, spec.gate
    days = pd.to_datetime(rows[DATE_COLUMN]).dt.date.to_numpy()
    per_day = []
    for day in sorted(set(days)):
        on_day = days == day
        mine = evaluate_outputs(spec.task, y[on_day], candidate.proba[on_day], candidate.threshold)
        theirs = evaluate_outputs(spec.task, y[on_day], champion.proba[on_day], champion.threshold)
        per_day.append(BacktestDay(day, int(on_day.sum()), _finite(mine[primary]), _finite(theirs[primary])))
    gain = None
    if len(y):
        _, differences = metric_bounds(
            y, candidate, champion, [primary], gate.confidence, gate.resamples, seed
        )
        gain = differences[primary]
    log.info(
        "backtest %s .. %s: %d matured rows on %d days, %s gain %s",
        first,
        last,
        len(y),
        len(per_day),
        primary,
        gain and gain.text(),
    )
    return Backtest(first, last, tuple(per_day), gain)


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None
