"""The Celery stack's layout, environment and command lines, without starting anything."""

from __future__ import annotations

import json
import stat

import pytest

from tools.scaleout.hostname import worker_hostname
from tools.scaleout.stack import CeleryAirflow, CeleryLayout, node_name, stack_env


@pytest.fixture
def layout(tmp_path) -> CeleryLayout:
    return CeleryLayout(home=tmp_path, port=8191, workers=3, concurrency=2)


def test_every_process_shares_one_environment_with_the_celery_settings(layout):
    env = stack_env(layout, {"PATH": "/bin", "AIRFLOW__CORE__EXECUTOR": "LocalExecutor"})
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"  # the caller's Airflow settings are dropped
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@127.0.0.1:5432/airflow_celery")
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+postgresql://postgres@127.0.0.1:5432/airflow_celery"
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://127.0.0.1:6379/3"
    assert json.loads(env["AIRFLOW_CONN_PLATFORM_DB"])["schema"] == "celery_platform"
    assert json.loads(env["AIRFLOW_CONN_PLATFORM_LAKE"])["extra"]["path"] == str(layout.home / "lake")
    airflow = CeleryAirflow(layout, env)
    assert airflow.env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:8191/execution/"
    for component in airflow.components:
        shared = {k: v for k, v in airflow.component_env(component).items() if k != "PLATFORM_WORKER_NAME"}
        assert shared == airflow.env, component


def test_the_jwt_secret_is_made_once_and_kept_private(layout):
    first = stack_env(layout, {})["AIRFLOW__API_AUTH__JWT_SECRET"]
    assert len(first) == 64
    assert stack_env(layout, {})["AIRFLOW__API_AUTH__JWT_SECRET"] == first
    assert stat.S_IMODE((layout.home / "secrets.json").stat().st_mode) == 0o600


def test_workers_have_distinct_node_names_and_serve_every_queue(layout):
    airflow = CeleryAirflow(layout, stack_env(layout, {}))
    workers = layout.worker_components
    assert airflow.components[-3:] == workers == ("worker1", "worker2", "worker3")
    commands = [airflow.command(w) for w in workers]
    names = [c[c.index("--celery-hostname") + 1] for c in commands]
    assert names == [node_name(w) for w in workers] and len(set(names)) == 3
    for command in commands:
        assert command[:3] == ["airflow", "celery", "worker"]
        assert command[command.index("--queues") + 1] == "train,score,default"
        assert command[command.index("--concurrency") + 1] == "2"
    assert airflow.command("scheduler") == ["airflow", "scheduler"]
    assert [airflow.component_env(w)["PLATFORM_WORKER_NAME"] for w in workers] == names
    assert "PLATFORM_WORKER_NAME" not in airflow.component_env("scheduler")


def test_a_task_records_its_workers_name_as_host(monkeypatch):
    monkeypatch.setenv("PLATFORM_WORKER_NAME", "worker2@vm")
    assert worker_hostname() == "worker2@vm"
    monkeypatch.delenv("PLATFORM_WORKER_NAME")
    assert worker_hostname()  # the machine's FQDN


@pytest.mark.parametrize(
    ("change", "message"),
    [({"metadata_db": "air-flow"}, "metadata_db='air-flow'"), ({"workers": 0}, "workers=0")],
)
def test_a_bad_layout_fails_naming_the_parameter(tmp_path, change, message):
    with pytest.raises(ValueError, match=message):
        CeleryLayout(home=tmp_path, **change)


def test_the_env_file_gives_a_shell_the_stacks_settings(layout, tmp_path):
    import subprocess

    from tools.scaleout.stack import write_env_file

    env = {**stack_env(layout, {"HOME": "/root"}), "PLATFORM_NOTE": "it's $HOME"}
    path = tmp_path / "stack.env"
    write_env_file(path, env)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    shown = subprocess.run(
        ["bash", "-c", f'source {path}; echo "$AIRFLOW__API_AUTH__JWT_SECRET|$PLATFORM_NOTE"'],
        capture_output=True,
        text=True,
        check=True,
        env={},
    ).stdout.strip()
    assert shown == f"{env['AIRFLOW__API_AUTH__JWT_SECRET']}|it's $HOME"
    assert "export HOME=" not in path.read_text()  # only the stack's own settings
