"""The retrain policy: a feature's alert must persist (`persisting_alerts`) and a cooldown must have
passed since the last trigger (`should_retrain`) before a scored day asks for a retrain.

A real shift persists; a noise alert, rare as it is, seldom repeats the next day. So only the features
that alerted on `drift.alert_days` consecutive scored days count, and a trigger holds off the next one
for `drift.cooldown_days`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping


def persisting_alerts(
    alerts_by_day: Mapping[dt.date, Collection[str]], today: dt.date, alert_days: int
) -> frozenset[str]:
    """The features that alerted on each of `alert_days` consecutive days, `today` among them.

    A day missing from `alerts_by_day` was not scored and breaks a run. `today` may be any day of the
    run, not only its last: a backfill that scores a run's later day first still finds the run when
    it scores the earlier one.

    Args:
        alerts_by_day: the features graded "alert" on each scored day (empty: scored, none alerted),
            for the days within ``alert_days - 1`` of `today`.
        today: the day being scored.
        alert_days: the spec's ``drift.alert_days`` (>= 1; 1: every alert counts).

    Raises:
        ValueError: when `alert_days` is below 1.
    """
    if alert_days < 1:
        raise ValueError(f"alert_days must be >= 1, got {alert_days}")
    found: set[str] = set()
    for last in (today + dt.timedelta(days=n) for n in range(alert_days)):
        run = [last - dt.timedelta(days=n) for n in range(alert_days)]
        if all(day in alerts_by_day for day in run):
            found |= set.intersection(*(set(alerts_by_day[day]) for day in run))
    return frozenset(found)


def should_retrain(
    persisting: Collection[str],
    today: dt.date,
    last_retrain_trigger: dt.date | None,
    cooldown_days: int,
) -> bool:
    """Whether today's drift should trigger a retrain.

    True exactly when some feature's alert persists (`persisting_alerts`) and no trigger blocks today.
    A trigger on day ``D`` blocks days ``D .. D + cooldown_days - 1``, so ``D + cooldown_days`` may
    trigger again (with 7: a Monday trigger allows the next one on the following Monday; with 0
    nothing is blocked). A trigger later than `today` also blocks it, so a backfill of an older day
    never retrains behind a newer trigger.

    Args:
        persisting: the features whose alert persists, with `today` in the run.
        today: the day being scored.
        last_retrain_trigger: the day of the last trigger, or None when there has been none.
        cooldown_days: the spec's ``drift.cooldown_days`` (>= 0).

    Raises:
        ValueError: on a negative cooldown.
    """
    if cooldown_days < 0:
        raise ValueError(f"cooldown_days must be >= 0, got {cooldown_days}")
    if not persisting:
        return False
    if last_retrain_trigger is None:
        return True
    elapsed = (today - last_retrain_trigger).days
    return elapsed >= 0 and elapsed >= cooldown_days
