"""What every use case's DAGs share: dates, default args, and the `ds` param of the trigger form."""

from __future__ import annotations

import datetime as dt

import pendulum
from airflow.sdk import Param

from include.alerting import PlatformAlert
from include.config import Settings
from include.usecases.spec import UseCase


def start_date(spec: UseCase) -> pendulum.DateTime:
    return pendulum.datetime(*spec.schedule.start_date.timetuple()[:3], tz=spec.schedule.timezone)


def end_date(settings: Settings) -> pendulum.DateTime | None:
    end = settings.dag_end_date
    return pendulum.datetime(end.year, end.month, end.day, tz="UTC") if end else None


def default_args(spec: UseCase, settings: Settings) -> dict:
    return {
        "owner": spec.owner,
        "retries": settings.task_retries,
        "retry_delay": dt.timedelta(seconds=settings.task_retry_delay_seconds),
        "queue": settings.default_queue,
        "on_failure_callback": PlatformAlert(settings.alerts_conn_id, spec.schedule.timezone),
    }


def ds_param(title: str) -> Param:
    """The optional day a manual run processes; empty lets the run's date decide."""
    return Param(
        None,
        type=["null", "string"],
        format="date",
        pattern=r"^\d{4}-\d{2}-\d{2}$",
        title=title,
        description="YYYY-MM-DD. Empty: the run's logical date names the day (see include/partition.py).",
    )


def day_sensor_args(settings: Settings) -> dict:
    """How a sensor waits for its day's input (a partition, a scoring): rescheduled between pokes,
    for at most 12 hours."""
    return {
        "poke_interval": dt.timedelta(seconds=settings.sensor_poke_seconds),
        "timeout": dt.timedelta(hours=12),
        "mode": "reschedule",
    }
