"""The demo's Airflow local settings: the scheduler imports what the tasks import, once.

Airflow imports `airflow_local_settings` from `sys.path` in every one of its processes; the demo's
environment (the Makefile) puts this folder there. On LocalExecutor each task is a fork of an
executor worker, itself a fork of the scheduler, so a module the scheduler has imported is already
in every task: a task no longer spends its first seconds importing pandas, pyarrow, scikit-learn
and skops (about 2 s of CPU per task, 300 tasks per demo, on 2 cores). Only the scheduler does it:
the CLI, the API server and the dag-processor start as before. Nothing is connected or opened here,
so no engine or file handle is shared across forks.
"""

from __future__ import annotations

import importlib
import logging
import sys
import time
import warnings

__all__: list[str] = []  # Airflow copies a local settings module's public names into its own settings

# What a task process imports: the task runner and the DAG file's parse (providers' asset and
# sensor modules), then every module the stages import inside their task callables (dags/*.py and
# include's function-level imports: `grep -rn "^    from include" include dags`), the connection
# hooks, the schema check every task makes, and the libraries those import lazily.
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


def _preload() -> None:
    log = logging.getLogger(__name__)
    started = time.perf_counter()
    with warnings.catch_warnings():
        # Airflow's own deprecation notices (the standard provider's sensors) say nothing to a demo user.
        warnings.simplefilter("ignore")
        for name in TASK_MODULES:
            importlib.import_module(name)
    log.info("preloaded the tasks' modules in %.1f s", time.perf_counter() - started)


if sys.argv[1:2] == ["scheduler"]:
    _preload()
