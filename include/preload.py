"""What Airflow's long-lived processes import before they fork tasks, so each task starts with its
imports done.

Airflow imports `airflow_local_settings` in each of its processes; the platform's
(`config/airflow_local_settings.py`, found in `$AIRFLOW_HOME/config` or on `PYTHONPATH`) calls
`preload` with the process's command line. On LocalExecutor a task is a fork of an executor worker,
itself a fork of the scheduler; on CeleryExecutor a task is a fork of the worker's pool process,
itself a fork of the worker. A module that process imported is already in every task: a task no
longer spends its first seconds importing pandas, pyarrow, scikit-learn and skops (2-4.5 s of CPU,
measured: docs/performance.md). A LocalExecutor scheduler loads every task's modules; a Celery
worker only a scoring shard's, since each task process's resident set counts what it inherits and a
shard's must stay under 500 MB. Nothing is connected or opened, so no connection or file handle is
shared across forks. Every other process (the CLI, the API server, the dag-processor) starts as before.
"""

from __future__ import annotations

import importlib
import logging
import time
import warnings
from collections.abc import Sequence

log = logging.getLogger(__name__)

# What a task process imports: the task runner and the DAG file's parse (providers' asset and
# sensor modules), then every module the stages import inside their task callables (dags/*.py and
# include's function-level imports; a test keeps the list complete), the connection hooks, the
# schema check every task makes, and the libraries those import lazily.
TASK_MODULES = (
    "airflow.sdk.execution_time.task_runner",
    "airflow.dag_processing.dagbag",
    "airflow.providers.standard.sensors.python",
    "airflow.providers.standard.operators.python",
    "airflow.providers.amazon.aws.assets.s3",
    "airflow.providers.sqlite.hooks.sqlite",
    "airflow.sdk.lineage",
    "airflow.providers.openlineage.plugins.listener",
    "openlineage.client.transport.file",
    "alembic.command",
    "alembic.script",
    "duckdb",
    "croniter",
    "pyarrow.pandas_compat",
    "include.alerting",
    "include.dag_context",
    "include.ingest.pipeline",
    "include.ingest.sources",
    "include.ingest.task",
    "include.io.bulk",
    "include.io.connections",
    "include.io.lake",
    "include.io.lineage",
    "include.io.memory",
    "include.monitoring.counting",
    "include.monitoring.outcomes",
    "include.monitoring.policy",
    "include.monitoring.reference",
    "include.monitoring.statistics",
    "include.outcomes.ingest",
    "include.outcomes.realised",
    "include.outcomes.task",
    "include.platform.day_swap",
    "include.platform.queries",
    "include.platform.schema",
    "include.platform.tables",
    "include.provenance",
    "include.registry.model_card",
    "include.registry.model_files",
    "include.registry.registry",
    "include.scoring.score",
    "include.scoring.task",
    "include.training.backtest",
    "include.training.compare",
    "include.training.curves",
    "include.training.estimators",
    "include.training.fairness",
    "include.training.gate",
    "include.training.importance",
    "include.training.metrics",
    "include.training.preprocess",
    "include.training.split",
    "include.training.task",
    "include.training.tuning",
    "include.usecases.expressions",
    # Each task process loads the plugins (plugins/ml_platform.py), which build the page's app.
    "include.ui",
    "include.ui.app",
)

# A scoring shard's imports: the task runner and the DAG file's parse, then what `score_shard`
# imports inside its callable (the driver and the estimators skops loads lazily included).
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


def modules_to_preload(argv: Sequence[str], executor: str) -> tuple[str, ...]:
    """The modules the Airflow process started as `argv` should import before it forks tasks, where
    `executor` is `[core] executor` (its first entry is the default; a class path or an alias)."""
    command = list(argv[1:3])
    default = executor.split(",", 1)[0].strip().rsplit(".", 1)[-1]
    if command[:1] == ["scheduler"] and default == "LocalExecutor":
        return TASK_MODULES
    if command == ["celery", "worker"]:
        return SHARD_MODULES
    return ()


def preload(argv: Sequence[str], executor: str) -> None:
    """Import what the process started as `argv` on `executor` forks its tasks with."""
    modules = modules_to_preload(argv, executor)
    if not modules:
        return
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Airflow's own deprecation notices, none of the platform's
        for name in modules:
            importlib.import_module(name)
    log.info("preloaded %d modules in %.1f s", len(modules), time.perf_counter() - started)
