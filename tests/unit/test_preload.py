"""What Airflow's long-lived processes import before they fork tasks (`include/preload.py`), and the
platform's Airflow local settings that call it."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
import sys
from pathlib import Path

import airflow.configuration  # noqa: F401  (the local settings import it; loaded before the tests patch imports)
import pytest

from include.preload import SHARD_MODULES, TASK_MODULES, modules_to_preload, preload

REPO = Path(__file__).resolve().parents[2]
LOCAL_SETTINGS = REPO / "config" / "airflow_local_settings.py"


@pytest.mark.parametrize(
    ("argv", "executor", "expected"),
    [
        (["airflow", "scheduler"], "LocalExecutor", TASK_MODULES),
        (["airflow", "scheduler"], "airflow.executors.local_executor.LocalExecutor", TASK_MODULES),
        (["airflow", "scheduler"], "CeleryExecutor", ()),  # its tasks are no forks of it
        (["airflow", "celery", "worker", "--queues", "score"], "CeleryExecutor", SHARD_MODULES),
        (["airflow", "api-server"], "LocalExecutor", ()),
        (["airflow", "dag-processor"], "CeleryExecutor", ()),
        (["airflow", "celery", "flower"], "CeleryExecutor", ()),
    ],
)
def test_only_a_process_that_forks_tasks_preloads_them(argv, executor, expected):
    assert modules_to_preload(argv, executor) == expected


def test_the_local_settings_preload_by_the_command_line_and_leak_nothing_into_airflow(monkeypatch):
    loaded: list[str] = []
    monkeypatch.setattr(importlib, "import_module", loaded.append)
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    for argv in (["airflow", "api-server"], ["airflow", "scheduler"]):
        spec = importlib.util.spec_from_file_location("local_settings_under_test", LOCAL_SETTINGS)
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setattr(sys, "argv", argv)
        spec.loader.exec_module(module)
        assert module.__all__ == []  # Airflow copies a local settings module's public names
    assert loaded == list(TASK_MODULES)  # the scheduler's, and nothing for the api-server


def lazy_include_imports() -> set[str]:
    """The `include` modules that the DAG files and the stages import inside functions."""
    found = set()
    for path in [*(REPO / "dags").glob("*.py"), *(REPO / "include").rglob("*.py")]:
        if re.search(r"include/(ui|serving|cli\.py)", str(path)) or "migrations" in path.parts:
            continue  # readers and migrations: never in a task
        tree = ast.parse(path.read_text())
        for function in ast.walk(tree):
            if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                for node in ast.walk(function):
                    if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("include."):
                        found.add(node.module)
    return found - {"include.config", "include.runs", "include.usecases.spec"}  # imported by the DAG files


def test_the_tasks_list_names_every_module_a_task_imports_lazily():
    missing = lazy_include_imports() - set(TASK_MODULES)
    assert not missing, f"add to TASK_MODULES in include/preload.py: {sorted(missing)}"


def test_every_listed_module_imports():
    for name in {*TASK_MODULES, *SHARD_MODULES}:
        importlib.import_module(name)


def test_preloading_imports_the_modules_and_nothing_for_other_processes(monkeypatch):
    loaded: list[str] = []
    monkeypatch.setattr(importlib, "import_module", loaded.append)
    preload(["airflow", "triggerer"], "LocalExecutor")
    assert loaded == []
    preload(["airflow", "celery", "worker"], "CeleryExecutor")
    assert loaded == list(SHARD_MODULES)
