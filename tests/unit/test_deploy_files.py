"""The deployment files, checked offline: no Docker engine runs where these tests run.

`docker-compose config -q` (Compose 1.29, `apt-get install docker-compose`) validates the compose file
without a daemon, and hadolint lints the Dockerfile. The compose file is also read as YAML to check the
stack's wiring: its services, one shared Airflow image and environment, the CeleryExecutor, and the
project's connections.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"

AIRFLOW_SERVICES = (
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker-1",
    "airflow-worker-2",
)
WORKERS = ("airflow-worker-1", "airflow-worker-2")
SERVICES = ("postgres", "redis", "minio", "minio-init", *AIRFLOW_SERVICES)
# Connection env var -> (conn_type, bucket); the ids and shapes are the platform's contract.
CONNECTIONS = {
    "AIRFLOW_CONN_PLATFORM_DB": ("postgres", None),
    "AIRFLOW_CONN_PLATFORM_LAKE": ("aws", "lake"),
    "AIRFLOW_CONN_CHURN_SOURCE_DB": ("postgres", None),
    "AIRFLOW_CONN_CHURN_SOURCE_FILES": ("aws", "sources"),
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def docker_compose() -> str:
    """The docker-compose binary; missing, it skips locally and fails under CI."""
    path = shutil.which("docker-compose")
    if path is None:
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail("docker-compose is not installed; CI must validate docker-compose.yaml")
        pytest.skip("docker-compose is not installed (apt-get install docker-compose); CI runs this check")
    return path


def compose_config(docker_compose: str, compose_file: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [docker_compose, "-f", str(compose_file), "config", "-q"],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_compose_file_validates(docker_compose: str) -> None:
    result = compose_config(docker_compose, COMPOSE_FILE)
    assert result.returncode == 0, result.stderr


def test_compose_validation_rejects_a_broken_file(docker_compose: str, tmp_path: Path) -> None:
    text = COMPOSE_FILE.read_text()
    assert text.count("    image: redis:7.2\n") == 1
    broken = tmp_path / "docker-compose.yaml"
    broken.write_text(text.replace("    image: redis:7.2\n", "    imagee: redis:7.2\n"))

    result = compose_config(docker_compose, broken)

    assert result.returncode != 0
    assert "imagee" in result.stderr


def test_compose_has_the_whole_stack(compose: dict) -> None:
    assert set(SERVICES) <= set(compose["services"])


def test_airflow_services_share_one_image_and_environment(compose: dict) -> None:
    common = compose["x-airflow-common"]
    for name in AIRFLOW_SERVICES:
        service = compose["services"][name]
        assert (service["image"], service["build"]) == (common["image"], common["build"]), name
        assert common["environment"].items() <= service["environment"].items(), name


def test_airflow_runs_celery_with_redis_and_a_postgres_result_backend(compose: dict) -> None:
    env = compose["x-airflow-common"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:")
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://")
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false"


def test_two_workers_with_distinct_names_consume_every_queue_the_platform_routes_to(compose: dict) -> None:
    env = compose["x-airflow-common"]["environment"]
    queues = {env[f"PLATFORM_{kind}_QUEUE"] for kind in ("TRAIN", "SCORE", "DEFAULT")}
    assert queues == {"train", "score", "default"}
    hostnames = set()
    for name in WORKERS:
        service = compose["services"][name]
        command = service["command"].split()
        assert command[:2] == ["celery", "worker"], name
        assert set(command[command.index("--queues") + 1].split(",")) == queues, name
        assert service["hostname"] == name
        hostnames.add(service["hostname"])
    assert len(hostnames) == len(WORKERS)


def test_every_airflow_process_shares_the_jwt_secret(compose: dict) -> None:
    """Left unset, each process signs with its own random key and workers fail to authenticate."""
    secret = compose["x-airflow-common"]["environment"]["AIRFLOW__API_AUTH__JWT_SECRET"]
    assert secret.startswith("${AIRFLOW_JWT_SECRET")
    for name in AIRFLOW_SERVICES:
        assert compose["services"][name]["environment"]["AIRFLOW__API_AUTH__JWT_SECRET"] == secret, name


def test_airflow_services_wait_for_airflow_init(compose: dict) -> None:
    for name in AIRFLOW_SERVICES[1:]:
        depends_on = compose["services"][name]["depends_on"]
        assert depends_on["airflow-init"] == {"condition": "service_completed_successfully"}, name


def test_airflow_init_migrates_airflow_then_the_platform_tables(compose: dict) -> None:
    script = compose["services"]["airflow-init"]["command"][-1]
    assert script.index("airflow db migrate") < script.index("python -m include.cli db upgrade")


@pytest.mark.parametrize(("variable", "expected"), CONNECTIONS.items(), ids=list(CONNECTIONS))
def test_connections_are_json_with_credentials_from_the_environment(
    compose: dict, variable: str, expected: tuple[str, str | None]
) -> None:
    conn_type, bucket = expected
    conn = json.loads(compose["x-airflow-common"]["environment"][variable])

    assert conn["conn_type"] == conn_type
    assert conn["login"].startswith("${")
    assert conn["password"].startswith("${")
    if conn_type == "aws":
        assert conn["extra"]["bucket"] == bucket
        assert conn["extra"]["endpoint_url"] == "http://minio:9000"
    else:
        assert (conn["host"], conn["schema"]) == ("postgres", "platform")


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(hadolint).exists(), "hadolint is missing: pip install -r requirements-dev.txt"

    result = subprocess.run(
        [hadolint, str(DOCKERFILE)], check=False, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stdout + result.stderr
