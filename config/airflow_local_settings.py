"""The platform's Airflow local settings: each long-lived Airflow process imports what its tasks will
import before it forks them (`include/preload.py`). Airflow finds this file in `$AIRFLOW_HOME/config`
(the image copies it there) or on `PYTHONPATH` (the demo, the test Airflows, the Celery stack)."""

from __future__ import annotations

import sys

from airflow.configuration import conf

from include.preload import preload

__all__: list[str] = []  # Airflow copies a local settings module's public names into its own settings

preload(sys.argv, conf.get("core", "executor"))
