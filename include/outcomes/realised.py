"""A scored day's realised performance and the decay rule, on plain arrays (no database).

`realised_figures` measures the day's stored outputs against the outcomes that matured for them:
each metric of the task with a bootstrap interval (`include.training.compare.metric_bounds`, seeded
by the day, so a rerun gives the same figures). `is_decayed` compares the primary metric with the
version's own holdout figure, and `decaying` finds a run of decayed days.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping

import numpy as np

from include.training.compare import Scored, metric_bounds
from include.usecases.spec import TASK_METRICS, direction


@dataclasses.dataclass(frozen=True)
class Interval:
    """A metric's estimate on the day's matched rows and its bootstrap bounds."""

    estimate: float | None
    lower: float | None
    upper: float | None

    def to_dict(self) -> dict[str, float | None]:
        return dataclasses.asdict(self)


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def realised_figures(
    task: str,
    y: np.ndarray,
    outputs: np.ndarray,
    threshold: float,
    confidence: float,
    resamples: int,
    seed: int,
) -> dict[str, Interval]:
    """Every metric of `task` on the matched rows, with its interval at `confidence`; a metric the
    rows cannot give (one class only, MAPE on a label not always positive) is None throughout.

    Raises:
        ValueError: when there is no matched row.
    """
    if len(y) == 0:
        raise ValueError("no scored row has a matured outcome")
    scored = Scored(outputs, threshold, regression=task == "regression")
    levels, _ = metric_bounds(y, scored, None, TASK_METRICS[task], confidence, resamples, seed)
    return {
        name: Interval(_finite(bound.estimate), _finite(bound.lower), _finite(bound.upper))
        for name, bound in levels.items()
    }


def is_decayed(metric: str, realised: Interval, expected: float | None) -> bool:
    """Whether the whole interval of `metric` lies on the worse side of the holdout figure."""
    if expected is None or realised.lower is None or realised.upper is None:
        return False
    if direction(metric) > 0:
        return realised.upper < expected
    return realised.lower > expected


def decaying(decayed_by_day: Mapping[dt.date, bool], last: dt.date, days: int) -> list[dt.date]:
    """The `days` consecutive scored days ending on `last` when every one decayed, else [] (a day
    that was not evaluated breaks the run)."""
    run = [last - dt.timedelta(days=n) for n in reversed(range(days))]
    return run if all(decayed_by_day.get(day, False) for day in run) else []


def day_seed(ds: dt.date) -> int:
    """The bootstrap's seed for a scored day: its ordinal, so each day's draws are its own and fixed."""
    return ds.toordinal()
