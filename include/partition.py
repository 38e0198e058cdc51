"""The one rule that turns an Airflow run into the day it processes (`ds`).

Contract 1 of DESIGN.md: every task derives its partition here, never from the wall clock.

The rule, in order:
1. The run's `ds` param (the trigger form, `-c '{"ds": ...}'`) names the day. A backfill run is the
   exception: each of its runs processes its own logical day, so a `ds` in a backfill's conf that
   names another day is refused, naming both (the conf is the same for every run of the backfill:
   it would process one day N times).
2. Otherwise the run's logical date does: a bare date (midnight in the use case's time zone) names its
   own day — the daily DAGs use data-interval timetables, whose logical date is the start of the
   day they cover, and `airflow dags test churn_ingest 2025-03-31` means 2025-03-31 — while a time
   of day (a trigger timetable's weekly training run at 03:00, or a date-time picked in the form)
   names the last day complete at that moment, the day before.
3. A run triggered by an Asset event has no logical date: the event's `extra["ds"]` names the day
   (the newest, when several events triggered it).
4. A manual run with no logical date (Airflow 3 allows it) applies rule 2 to its `run_after`.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

DS_FORMAT = "%Y-%m-%d"


class PartitionError(ValueError):
    """A run whose day cannot be determined, or a malformed `ds`."""


@dataclass(frozen=True, order=True)
class Partition:
    """One day of data: the interval [start, end) in the use case's time zone."""

    ds: dt.date
    tz: str = "UTC"

    @property
    def key(self) -> str:
        return self.ds.strftime(DS_FORMAT)

    @property
    def start(self) -> dt.datetime:
        return dt.datetime.combine(self.ds, dt.time(), tzinfo=ZoneInfo(self.tz))

    @property
    def end(self) -> dt.datetime:
        return dt.datetime.combine(self.ds + dt.timedelta(days=1), dt.time(), tzinfo=ZoneInfo(self.tz))


def parse_ds(value: str | dt.date, name: str = "ds") -> dt.date:
    """A `YYYY-MM-DD` string (or a date) as a date, or a `PartitionError` naming the parameter."""
    if isinstance(value, dt.datetime):
        raise PartitionError(f"{name} must be a date (YYYY-MM-DD), got the date-time {value.isoformat()}")
    if isinstance(value, dt.date):
        return value
    try:
        return dt.datetime.strptime(str(value).strip(), DS_FORMAT).date()
    except ValueError:
        raise PartitionError(f"{name} must be a date as YYYY-MM-DD, got {value!r}") from None


def day_named_by(instant: dt.datetime, tz: str = "UTC") -> dt.date:
    """Rule 2: a midnight names its own day; any other instant names the day before it."""
    if instant.tzinfo is None:
        raise PartitionError(f"a run's date must carry a time zone, got {instant.isoformat()}")
    local = instant.astimezone(ZoneInfo(tz))
    if local.time() == dt.time():
        return local.date()
    return local.date() - dt.timedelta(days=1)


def resolve_partition(
    ds_param: str | dt.date | None,
    logical_date: dt.datetime | None,
    run_after: dt.datetime | None,
    tz: str = "UTC",
    event_ds: str | None = None,
    backfill: bool = False,
) -> Partition:
    """Apply the module's rule to the run's facts (pure; `include.dag_context` reads them from Airflow).

    Raises:
        PartitionError: for a malformed `ds`, a run with no date at all, or a backfill run whose
            `ds` names another day than its logical date.
    """
    if ds_param not in (None, ""):
        day = parse_ds(ds_param)
        if backfill and logical_date is not None and day != day_named_by(logical_date, tz):
            raise PartitionError(
                f"backfill run of {day_named_by(logical_date, tz)} has ds {day} in its conf: every run "
                "of a backfill processes its own day; drop ds from the backfill's --dag-run-conf"
            )
        return Partition(day, tz)
    if logical_date is None and event_ds:
        return Partition(parse_ds(event_ds, "the triggering asset event's ds"), tz)
    instant = logical_date or run_after
    if instant is None:
        raise PartitionError("the run has no ds param, no logical date and no run_after")
    return Partition(day_named_by(instant, tz), tz)


def check_params(params: Any) -> None:
    """Refuse a run whose params hold a non-finite number anywhere (a JSON `NaN` or `Infinity`).

    Python's JSON parser, and so a run's conf, accepts them, and JSON Schema's bounds let NaN
    through (every comparison with it is false): refused here, naming the param, before any work.

    Raises:
        PartitionError: naming the param (and the item, inside a list or a mapping).
    """
    for name, value in dict(params).items():
        _check_finite(value, str(name))


def _check_finite(value: Any, name: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise PartitionError(
            f"param {name}: {value!r} is not a finite number (JSON NaN and Infinity are refused)"
        )
    if isinstance(value, dict):
        for key, item in value.items():
            _check_finite(item, f"{name}.{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_finite(item, f"{name}[{i}]")
