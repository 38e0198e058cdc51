"""Settings read from the environment, in one place, with the defaults the platform runs on.

Credentials never live here: every external system is reached through an Airflow connection id
(`AIRFLOW_CONN_<ID>` or a secrets backend); these settings only name the ids.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from include.usecases.spec import SPEC_DIR


@dataclass(frozen=True)
class Settings:
    """Which connections hold the platform's tables and lake, where the specs are, and the task queues."""

    platform_db_conn_id: str
    lake_conn_id: str
    spec_dir: Path
    # Optional last day the schedules run to: the demo's sources end on 2025-03-31, so unpausing a
    # DAG for a backfill must not also schedule today's interval.
    dag_end_date: dt.date | None = None
    # Task retries (2 in production); the demo sets 0 so that a failure shows at once.
    task_retries: int = 2
    # Seconds between a task's failure and its retry (5 minutes; the Celery end-to-end test sets 5 s).
    task_retry_delay_seconds: int = 300
    # Seconds between a sensor's pokes (a day's partition, a day's scoring); the demo sets a few.
    sensor_poke_seconds: int = 300
    # The HTTP connection alerts are POSTed to (include/alerting.py); undefined: a logged warning.
    alerts_conn_id: str = "platform_alerts"
    # Celery queues (ignored by other executors): training trials and scoring shards on their own,
    # so a deployment can give each its own workers; every other task on the default queue.
    train_queue: str = "train"
    score_queue: str = "score"
    default_queue: str = "default"

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            platform_db_conn_id=os.environ.get("PLATFORM_DB_CONN_ID", "platform_db"),
            lake_conn_id=os.environ.get("PLATFORM_LAKE_CONN_ID", "platform_lake"),
            spec_dir=Path(os.environ.get("PLATFORM_SPEC_DIR", SPEC_DIR)),
            dag_end_date=dt.date.fromisoformat(end)
            if (end := os.environ.get("PLATFORM_DAG_END_DATE"))
            else None,
            task_retries=int(os.environ.get("PLATFORM_TASK_RETRIES", "2")),
            task_retry_delay_seconds=int(os.environ.get("PLATFORM_TASK_RETRY_DELAY_SECONDS", "300")),
            sensor_poke_seconds=int(os.environ.get("PLATFORM_SENSOR_POKE_SECONDS", "300")),
            alerts_conn_id=os.environ.get("PLATFORM_ALERTS_CONN_ID", "platform_alerts"),
            train_queue=_queue("PLATFORM_TRAIN_QUEUE", "train"),
            score_queue=_queue("PLATFORM_SCORE_QUEUE", "score"),
            default_queue=_queue("PLATFORM_DEFAULT_QUEUE", "default"),
        )

    @property
    def queues(self) -> tuple[str, ...]:
        """Every queue the platform's tasks go to: what a worker serving them all listens on."""
        return tuple(dict.fromkeys((self.train_queue, self.score_queue, self.default_queue)))


def _queue(variable: str, default: str) -> str:
    """A Celery queue name from the environment: one word, as `airflow celery worker -q` splits on commas."""
    name = os.environ.get(variable, default).strip()
    if not name or "," in name or any(c.isspace() for c in name):
        raise ValueError(f"{variable}={name!r}: a queue name is one word, without commas or spaces")
    return name
