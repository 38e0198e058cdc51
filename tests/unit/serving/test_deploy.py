"""The scoring service in docker-compose.yaml: the platform's image and connections, its own token."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

COMPOSE = yaml.safe_load((Path(__file__).resolve().parents[3] / "docker-compose.yaml").read_text())


def test_the_scoring_service_runs_the_platforms_image_with_a_token_from_the_environment() -> None:
    scoring = COMPOSE["services"]["scoring"]
    common = COMPOSE["x-airflow-common"]
    assert scoring["image"] == common["image"]
    assert common["environment"].items() <= scoring["environment"].items()
    assert scoring["command"][:3] == ["python", "-m", "include.serving"]
    token = json.loads(scoring["environment"]["AIRFLOW_CONN_PLATFORM_SERVING"])["password"]
    assert token.startswith("${SERVING_TOKEN")
    assert "AIRFLOW_CONN_PLATFORM_SERVING" not in common["environment"]  # Airflow's processes lack it
    assert scoring["ports"] == ["127.0.0.1:${SCORING_PORT:-8000}:8000"]
    assert "http://localhost:8000/health" in scoring["healthcheck"]["test"]
