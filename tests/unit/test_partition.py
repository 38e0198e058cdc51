"""The rule that turns a run into its day: the ds param, else the logical date, else run_after."""

from __future__ import annotations

import datetime as dt
import re
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from include.dag_context import partition_from_context
from include.partition import Partition, PartitionError, resolve_partition

UTC = dt.UTC
NEW_YORK = "America/New_York"
ZONES = ["UTC", NEW_YORK, "Europe/Berlin", "Asia/Kolkata", "Australia/Lord_Howe", "America/Sao_Paulo"]


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def test_the_ds_param_wins_over_the_logical_date_and_run_after():
    partition = resolve_partition("2025-01-15", utc(2025, 3, 31), utc(2025, 4, 1, 6), "UTC")

    assert partition == Partition(dt.date(2025, 1, 15), "UTC")
    assert partition.key == "2025-01-15"


def test_a_blank_ds_param_falls_back_to_the_logical_date():
    assert resolve_partition("", utc(2025, 3, 31), None).ds == dt.date(2025, 3, 31)


@pytest.mark.parametrize("text", ["2025-02-30", "31/03/2025", "yesterday", "2025-3-31T00:00"])
def test_a_malformed_ds_param_is_refused_naming_ds(text):
    with pytest.raises(PartitionError, match=r"^ds must be a date as YYYY-MM-DD, got ") as caught:
        resolve_partition(text, utc(2025, 3, 31), None)

    assert repr(text) in str(caught.value)


def test_a_date_time_as_ds_param_is_refused():
    with pytest.raises(PartitionError, match=r"^ds must be a date"):
        resolve_partition(dt.datetime(2025, 3, 31, tzinfo=UTC), None, None)


def test_a_midnight_logical_date_names_its_own_day():
    # `airflow dags test churn_ingest 2025-03-31`, or a daily data-interval run covering that day.
    assert resolve_partition(None, utc(2025, 3, 31), None).ds == dt.date(2025, 3, 31)


def test_a_logical_date_with_a_time_of_day_names_the_day_before():
    # The weekly training run at 03:00 trains on the last complete day.
    assert resolve_partition(None, utc(2025, 3, 31, 3), None).ds == dt.date(2025, 3, 30)
    assert resolve_partition(None, utc(2025, 3, 31, 0, 0, 0, 1), None).ds == dt.date(2025, 3, 30)


def test_with_no_logical_date_run_after_applies_the_same_rule():
    assert resolve_partition(None, None, utc(2025, 4, 1, 8, 30)).ds == dt.date(2025, 3, 31)
    assert resolve_partition(None, None, utc(2025, 4, 1)).ds == dt.date(2025, 4, 1)


def test_a_run_with_nothing_to_go_by_is_refused():
    with pytest.raises(PartitionError, match="no ds param, no logical date and no run_after"):
        resolve_partition(None, None, None)


def test_a_naive_date_time_is_refused():
    with pytest.raises(PartitionError, match=r"must carry a time zone.*2025-03-31T00:00:00"):
        resolve_partition(None, dt.datetime(2025, 3, 31), None)


def test_midnight_in_the_use_cases_time_zone_names_that_day():
    ny_midnight = dt.datetime(2025, 3, 31, tzinfo=ZoneInfo(NEW_YORK))
    as_utc = ny_midnight.astimezone(UTC)  # 04:00 UTC

    assert resolve_partition(None, as_utc, None, NEW_YORK) == Partition(dt.date(2025, 3, 31), NEW_YORK)
    # The same instant, read in UTC, is 04:00: the day before.
    assert resolve_partition(None, as_utc, None, "UTC").ds == dt.date(2025, 3, 30)


def test_partition_from_context_reads_params_logical_date_and_run_after():
    manual = {"params": {}, "logical_date": None, "dag_run": SimpleNamespace(run_after=utc(2025, 4, 1, 9))}
    scheduled = {"params": {"ds": None}, "logical_date": utc(2025, 3, 31), "dag_run": None}
    by_form = {**scheduled, "params": {"ds": "2025-02-01"}}

    assert partition_from_context(manual).ds == dt.date(2025, 3, 31)
    assert partition_from_context(scheduled).ds == dt.date(2025, 3, 31)
    assert partition_from_context(by_form).ds == dt.date(2025, 2, 1)


def test_a_backfill_run_whose_conf_names_another_day_is_refused_naming_both():
    """`backfill create --from-date 2025-03-01 ... --dag-run-conf '{"ds": "2025-03-05"}'` would process
    2025-03-05 once per run; each run is refused instead. A conf naming the run's own day is fine."""
    from airflow.utils.types import DagRunType

    def backfill_run(day: int, ds: str) -> dict:
        dag_run = SimpleNamespace(run_after=utc(2025, 4, 1), run_type=DagRunType.BACKFILL_JOB)
        return {"params": {"ds": ds}, "logical_date": utc(2025, 3, day), "dag_run": dag_run}

    with pytest.raises(PartitionError, match=r"backfill run of 2025-03-01 has ds 2025-03-05 in its conf"):
        partition_from_context(backfill_run(1, "2025-03-05"))
    assert partition_from_context(backfill_run(5, "2025-03-05")).ds == dt.date(2025, 3, 5)
    manual = {**backfill_run(1, "2025-03-05"), "dag_run": SimpleNamespace(run_after=None, run_type="manual")}
    assert partition_from_context(manual).ds == dt.date(2025, 3, 5)


def test_a_partition_bounds_exactly_its_day():
    partition = Partition(dt.date(2025, 3, 31))

    assert partition.start == utc(2025, 3, 31)
    assert partition.end == utc(2025, 4, 1)
    assert partition.start <= utc(2025, 3, 31, 23, 59, 59, 999999) < partition.end
    assert not partition.start <= utc(2025, 4, 1) < partition.end


def test_a_partition_on_a_daylight_saving_day_spans_its_local_day():
    # New York moved its clocks forward on 2025-03-09: that local day lasts 23 hours.
    partition = Partition(dt.date(2025, 3, 9), NEW_YORK)

    assert partition.start == utc(2025, 3, 9, 5)
    assert partition.end == utc(2025, 3, 10, 4)
    assert partition.end.astimezone(UTC) - partition.start.astimezone(UTC) == dt.timedelta(hours=23)


instants = st.datetimes(
    min_value=dt.datetime(1971, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=st.timezones()
)


@given(instant=instants, tz=st.sampled_from(ZONES))
def test_any_instant_names_its_local_day_or_the_day_before(instant, tz):
    local = instant.astimezone(ZoneInfo(tz))

    day = resolve_partition(None, instant, None, tz).ds

    assert day in (local.date(), local.date() - dt.timedelta(days=1))
    assert (day == local.date()) == (local.time() == dt.time())


@given(day=st.dates(dt.date(1971, 1, 1), dt.date(2100, 1, 1)), tz=st.sampled_from(ZONES))
def test_a_partitions_start_names_the_partition(day, tz):
    partition = Partition(day, tz)
    # Skip the rare days whose local midnight does not exist (a clock change at midnight).
    for bound in (partition.start, partition.end):
        assume(bound.astimezone(UTC).astimezone(ZoneInfo(tz)).time() == dt.time())

    assert resolve_partition(None, partition.start.astimezone(UTC), None, tz) == partition
    assert resolve_partition(None, partition.end, None, tz).ds == day + dt.timedelta(days=1)


def test_an_asset_triggered_run_takes_the_newest_day_of_its_events():
    event = lambda ds: SimpleNamespace(extra={"ds": ds})  # noqa: E731
    context = {
        "params": {},
        "logical_date": None,
        "dag_run": SimpleNamespace(run_after=dt.datetime(2025, 4, 2, 9, 30, tzinfo=dt.UTC)),
        "triggering_asset_events": {"churn_retrain_request": [event("2025-03-30"), event("2025-03-31")]},
    }
    assert partition_from_context(context).ds == dt.date(2025, 3, 31)
    context["params"] = {"ds": "2025-03-01"}
    assert partition_from_context(context).ds == dt.date(2025, 3, 1)  # the form still wins
    context["params"] = {}
    context["triggering_asset_events"] = {"churn_retrain_request": [SimpleNamespace(extra={})]}
    assert partition_from_context(context).ds == dt.date(2025, 4, 1)  # no ds in the event: run_after


def test_an_event_with_a_malformed_ds_is_refused_naming_it():
    with pytest.raises(PartitionError, match="triggering asset event's ds"):
        resolve_partition(None, None, None, event_ds="31/03/2025")


@pytest.mark.parametrize(
    ("conf", "named"),
    [
        ('{"min_improvement": NaN}', "param min_improvement: nan"),
        ('{"min_improvement": Infinity}', "param min_improvement: inf"),
        ('{"ds": null, "weights": [1, -Infinity]}', "param weights[1]: -inf"),
        ('{"extra": {"k": NaN}}', "param extra.k: nan"),
    ],
)
def test_a_non_finite_number_in_the_conf_is_refused_naming_the_param(conf, named):
    """Finding 6: JSON NaN passes a number Param's bounds; the run then failed with another message."""
    import json

    context = {"params": json.loads(conf), "logical_date": utc(2025, 3, 31), "dag_run": None}

    with pytest.raises(PartitionError, match=re.escape(named)):
        partition_from_context(context)


def test_a_run_refuses_a_nan_min_improvement_before_any_work():
    from include.runs import RunFacts

    with pytest.raises(PartitionError, match="param min_improvement: nan is not a finite number"):
        RunFacts.of("churn", "2025-03-31", "manual", min_improvement=float("nan"))
