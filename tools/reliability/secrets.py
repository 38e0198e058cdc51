"""Secrets: a password planted in every kind of connection, a failing run of each DAG, then a search.

The platform database is PostgreSQL reached with the planted password (the test server trusts
loopback, so any password connects); the lake, the SQL source and the alerts webhook carry it
too, and the file source is an `aws` connection holding it as its secret key, on an endpoint that
refuses connections, so that ingest fails. Each DAG then runs once through `airflow dags test`
with no retries, and fails: ingest (the unreachable bucket), scoring (no champion for the day) and
training (no partition for its day). Searched for the password: every file under the Airflow
home's logs, each command's output, every alert the webhook received, and the CLI's output.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tools.localhost import free_port

REPO = Path(__file__).resolve().parents[2]


@dataclass
class SecretFigures:
    connections_planted: int = 0
    dag_runs_failed: int = 0
    places_searched: int = 0
    occurrences: int = 0
    alerts_received: int = 0
    webhook_authenticated_with_it: bool = False
    where_found: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Hook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.received.append(
            {"body": body.decode(errors="replace"), "auth": self.headers["Authorization"]}
        )
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def planted_connections(world, url, password: str, hook_port: int) -> dict[str, dict[str, Any]]:
    """Every kind of connection the platform uses, each holding `password`."""
    return {
        "platform_db": {
            "conn_type": "postgres",
            "host": url.host,
            "port": url.port,
            "login": url.username,
            "password": password,
            "schema": url.database,
        },
        "platform_lake": {"conn_type": "fs", "password": password, "extra": {"path": str(world.lake)}},
        "churn_source_db": {
            "conn_type": "sqlite",
            "host": str(world.root / "source.db"),
            "password": password,
        },
        "churn_source_files": {
            "conn_type": "aws",
            "login": "AKIAPLANTED",
            "password": password,
            "extra": {
                "bucket": "sources",
                "endpoint_url": f"http://127.0.0.1:{free_port()}",
                "region_name": "us-east-1",
            },
        },
        "platform_alerts": {
            "conn_type": "http",
            "host": f"http://127.0.0.1:{hook_port}/hooks",
            "login": "alerts",
            "password": password,
        },
    }


def failing_runs(env: dict[str, str], figures: SecretFigures) -> dict[str, str]:
    """A failing `airflow dags test` of each DAG, then the CLI's readers; each one's output."""
    outputs: dict[str, str] = {}
    airflow = str(Path(sys.executable).parent / "airflow")
    subprocess.run([airflow, "db", "migrate"], env=env, capture_output=True, check=True)
    for dag_id, ds in (
        ("churn_ingest", "2025-03-05"),
        ("churn_score", "2025-03-06"),
        ("churn_train", "2025-03-20"),  # no partition that day
    ):
        try:
            done = subprocess.run(
                [airflow, "dags", "test", dag_id, ds],
                env=env,
                capture_output=True,
                text=True,
                check=False,
                timeout=240,
            )
        except subprocess.TimeoutExpired as late:
            figures.where_found.append(f"dags test {dag_id} did not finish in 240 s")
            outputs[f"airflow dags test {dag_id}"] = str(late.stdout or "") + str(late.stderr or "")
            continue
        outputs[f"airflow dags test {dag_id}"] = done.stdout + done.stderr
        failed = done.returncode != 0 or "failed" in (done.stdout + done.stderr).lower()
        figures.dag_runs_failed += failed
    for command in ("runs", "models", "gate", "predictions"):
        done = subprocess.run(
            [sys.executable, "-m", "include.cli", command, "churn"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        outputs[f"cli {command}"] = done.stdout + done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "include.cli", "db", "current"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    outputs["cli db current"] = done.stdout + done.stderr
    return outputs


def run_secrets(world, pg_url: str) -> SecretFigures:
    """Plant, fail each DAG, search. `world` is seeded (SQLite source); `pg_url` an empty database."""
    import sqlalchemy as sa

    from include.platform.schema import upgrade
    from tools.reliability import tasks

    password = f"Pl4nted-{secrets.token_hex(8)}"
    hook = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    hook.received = []
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    url = sa.engine.make_url(pg_url)
    upgrade(sa.create_engine(url))
    conns = planted_connections(world, url, password, hook.server_port)
    figures = SecretFigures(connections_planted=len(conns))
    with tempfile.TemporaryDirectory(prefix="rel-secrets-") as home:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW__", "PLATFORM_"))
        }
        env |= {f"AIRFLOW_CONN_{k.upper()}": json.dumps(v) for k, v in conns.items()}
        env |= {
            "AIRFLOW_HOME": home,
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "PLATFORM_TASK_RETRIES": "0",
            "PYTHONPATH": str(REPO),
        }
        # The day scoring fails on must have its partition (else the sensor waits): ingest it here,
        # through the world's working connections, into the same lake and platform database.
        from include.io.connections import engine_for

        saved = dict(os.environ)
        os.environ.update({**world.env, "AIRFLOW_CONN_REL_PLATFORM": json.dumps(conns["platform_db"])})
        engine_for.cache_clear()
        try:
            tasks.ingest("2025-03-06", "secrets")
        finally:
            os.environ.clear()
            os.environ.update(saved)
            engine_for.cache_clear()
        outputs = failing_runs(env, figures)
        for path in Path(home, "logs").rglob("*"):
            if path.is_file():
                outputs[f"log {path.relative_to(home)}"] = path.read_text(errors="replace")
    hook.shutdown()
    for i, alert in enumerate(hook.received):
        outputs[f"alert {i}"] = alert["body"]
    import base64

    figures.alerts_received = len(hook.received)
    token = base64.b64encode(f"alerts:{password}".encode()).decode()
    figures.webhook_authenticated_with_it = any(token in (a["auth"] or "") for a in hook.received)
    figures.places_searched = len(outputs)
    for where, text in outputs.items():
        found = text.count(password)
        if found:
            figures.occurrences += found
            figures.where_found.append(f"{where}: {found}")
    return figures
