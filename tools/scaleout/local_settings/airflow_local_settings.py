"""The Celery stack's Airflow local settings: a worker imports what a scoring shard imports, once.

Airflow imports `airflow_local_settings` from `sys.path` in each of its processes; the stack's
environment (`tools.scaleout.stack.stack_env`) puts this folder there. A Celery worker's task is a
fork of its pool process, itself a fork of the worker, so a module the worker has imported is
already in every task: a shard no longer spends its first seconds importing pandas, pyarrow,
scikit-learn and skops (~4.5 s of CPU each time, measured: docs/performance.md). Only the scoring
path is loaded, not every task's modules: each task process's resident set counts what it inherits,
and a shard's must stay under 500 MB. Nothing is connected or opened here, so no connection or
file handle is shared across forks.
"""

from __future__ import annotations

import importlib
import logging
import sys
import time
import warnings

__all__: list[str] = []  # Airflow copies a local settings module's public names into its own settings

# A shard task's imports: the task runner and the DAG file's parse, then what `score_shard` imports
# inside its callable (the driver and the estimators skops loads lazily included).
SHARD_MODULES = (
    "airflow.sdk.execution_time.task_runner",
    "airflow.dag_processing.dagbag",
    "airflow.providers.standard.sensors.python",
    "airflow.providers.standard.operators.python",
    "adbc_driver_postgresql.dbapi",
    "psutil",
    "include.dag_context",
    "include.io.bulk",
    "include.io.connections",
    "include.io.memory",
    "include.monitoring.counting",
    "include.monitoring.reference",
    "include.monitoring.statistics",
    "include.platform.day_swap",
    "include.platform.schema",
    "include.registry.model_files",
    "include.registry.registry",
    "include.scoring.score",
    "include.scoring.task",
    "sklearn.ensemble",
    "sklearn.linear_model",
)


def _preload() -> None:
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Airflow's own deprecation notices, nothing of ours
        for name in SHARD_MODULES:
            importlib.import_module(name)
    logging.getLogger(__name__).info("preloaded a shard's modules in %.1f s", time.perf_counter() - started)


if sys.argv[1:3] == ["celery", "worker"]:
    _preload()
