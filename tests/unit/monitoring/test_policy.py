"""Retrain policy: which alerts persist, and the cooldown between retrain triggers."""

from __future__ import annotations

import datetime as dt

import pytest

from include.monitoring.policy import persisting_alerts, should_retrain
from tests.unit.monitoring.conftest import DAY

TRIGGER = dt.date(2025, 3, 3)


@pytest.mark.parametrize(
    ("today", "last", "cooldown", "expected"),
    [
        (TRIGGER, None, 7, True),  # never triggered
        (TRIGGER, TRIGGER, 7, False),  # a rerun of the trigger's own day
        (TRIGGER + dt.timedelta(days=1), TRIGGER, 7, False),
        (TRIGGER + dt.timedelta(days=6), TRIGGER, 7, False),  # last blocked day
        (TRIGGER + dt.timedelta(days=7), TRIGGER, 7, True),  # first free day
        (TRIGGER, TRIGGER, 0, True),  # no cooldown
        (TRIGGER - dt.timedelta(days=30), TRIGGER, 7, False),  # backfill behind a newer trigger
    ],
)
def test_cooldown_boundaries(today, last, cooldown, expected):
    assert should_retrain({"tenure"}, today, last, cooldown) is expected


def test_nothing_persisting_never_retrains():
    assert should_retrain(frozenset(), DAY, None, 7) is False


def test_should_retrain_refuses_a_negative_cooldown():
    with pytest.raises(ValueError, match="cooldown_days must be >= 0"):
        should_retrain({"tenure"}, DAY, None, -1)


def _alerts_from_day(*alerts: set[str] | None) -> dict[dt.date, set[str]]:
    """Alerts from DAY on, one entry a day; None: the day was not scored."""
    return {DAY + dt.timedelta(days=n): a for n, a in enumerate(alerts) if a is not None}


@pytest.mark.parametrize(
    ("alerts", "today", "alert_days", "persisting"),
    [
        (_alerts_from_day({"tenure"}), 0, 1, {"tenure"}),  # one day is enough when asked
        (_alerts_from_day({"tenure"}, set()), 0, 2, set()),  # a one-day fluke
        (_alerts_from_day({"tenure"}, {"tenure", "gender"}), 1, 2, {"tenure"}),  # the same feature both days
        (_alerts_from_day({"tenure"}, {"gender"}), 1, 2, set()),  # two flukes in two features
        (_alerts_from_day({"tenure"}, {"tenure"}), 0, 2, {"tenure"}),  # the run's later day was scored first
        (_alerts_from_day({"tenure"}, None, {"tenure"}), 2, 2, set()),  # a day not scored breaks the run
        (_alerts_from_day({"tenure"}, {"tenure"}, set()), 1, 3, set()),
        (_alerts_from_day({"tenure"}, {"tenure"}, {"tenure"}), 1, 3, {"tenure"}),  # today in the middle
    ],
)
def test_persisting_alerts(alerts, today, alert_days, persisting):
    assert persisting_alerts(alerts, DAY + dt.timedelta(days=today), alert_days) == persisting


def test_persisting_alerts_refuses_fewer_than_one_day():
    with pytest.raises(ValueError, match="alert_days must be >= 1"):
        persisting_alerts({}, DAY, 0)
