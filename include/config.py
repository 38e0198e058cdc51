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
    """Which connections hold the platform's tables and lake, and where the specs are."""

    platform_db_conn_id: str
    lake_conn_id: str
    spec_dir: Path
    # Optional last day the schedules run to: the demo's sources end on 2025-03-31, so unpausing a
    # DAG for a backfill must not also schedule today's interval.
    dag_end_date: dt.date | None = None
    # Task retries (2 in production); the demo sets 0 so that a failure shows at once.
    task_retries: int = 2
    # The HTTP connection alerts are POSTed to (include/alerting.py); undefined: a logged warning.
    alerts_conn_id: str = "platform_alerts"

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
            alerts_conn_id=os.environ.get("PLATFORM_ALERTS_CONN_ID", "platform_alerts"),
        )
