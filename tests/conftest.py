"""Shared fixtures: an isolated Airflow home, PostgreSQL, and moto's S3 server on loopback.

PostgreSQL and S3 tests run for real in CI (`CI` set): there a missing server fails the run. On a
machine without PostgreSQL they are skipped with the reason shown by `pytest -ra`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import tempfile
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from tools.localhost import free_port

REPO = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = os.environ.get(
    "PLATFORM_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)

# Airflow reads its configuration once, at import: point it at a private home before anything imports it.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="airflow-home-"))
os.environ.update(
    {
        "AIRFLOW_HOME": str(_AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}",
        # Tokens signed as in production: HS512 wants a 64-byte key (Airflow's test default is shorter).
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
    }
)


# Timings on shared 2-core machines swing: hypothesis's per-example deadline would flake, not find bugs.
settings.register_profile("platform", deadline=None)
settings.load_profile("platform")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false")


def unavailable(reason: str):
    """Fail in CI, skip (with the reason) elsewhere."""
    if in_ci():
        pytest.fail(f"{reason} (CI must run this test)")
    pytest.skip(reason)


@contextlib.contextmanager
def postgres_database(prefix: str) -> Iterator[Any]:
    """A fresh PostgreSQL database named `<prefix>_<random>`, dropped (forcibly) at the end; its URL."""
    import sqlalchemy as sa

    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        unavailable(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {exc.orig}")
    try:
        yield sa.engine.make_url(PG_ADMIN_URL).set(database=name)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def pg_url():
    """A fresh PostgreSQL database for the session, dropped at the end."""
    with postgres_database("platform_test") as url:
        yield url


@pytest.fixture
def pg_engine(pg_url):
    """An engine on the session's database, emptied before each test, the platform tables migrated."""
    import sqlalchemy as sa

    from include.platform.schema import upgrade

    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's S3 server on a loopback port, for the session."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_client(s3_endpoint, monkeypatch):
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    return boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")


@pytest.fixture
def make_bucket(s3_client):
    """Create a bucket with a unique name; returns its name."""

    def make(prefix: str = "bucket") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        s3_client.create_bucket(Bucket=name)
        return name

    return make


@pytest.fixture(scope="session")
def airflow_db():
    """Airflow's metadata database (SQLite in the session's Airflow home), migrated once."""
    import subprocess
    import sys

    airflow = Path(sys.executable).parent / "airflow"
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True)
    return os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append({"path": self.path, "json": json.loads(body)})
        self.send_response(self.server.status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


class Receiver(ThreadingHTTPServer):
    """A webhook on a free loopback port: records every POSTed JSON body, answers `status`."""

    def __init__(self, status: int = 200) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.status = status
        self.received: list[dict[str, Any]] = []
        self.url = f"http://127.0.0.1:{self.server_port}/hooks/alerts"


def http_conn(url: str) -> str:
    return json.dumps({"conn_type": "http", "host": url})


@pytest.fixture
def receiver(monkeypatch) -> Iterator[Receiver]:
    """A running receiver, configured as the `platform_alerts` connection."""
    server = Receiver()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("AIRFLOW_CONN_PLATFORM_ALERTS", http_conn(server.url))
    yield server
    server.shutdown()
    server.server_close()


def new_version(run_id: str, ds: dt.date, roc_auc: float = 0.84):
    """A registry entry for a model trained as of `ds` (no model file behind it)."""
    from include.registry.registry import NewVersion

    return NewVersion(
        use_case="churn",
        run_id=run_id,
        ds=ds,
        window_start=ds - dt.timedelta(days=59),
        window_end=ds,
        holdout_start=ds - dt.timedelta(days=13),
        holdout_end=ds,
        family="logistic_regression",
        params={"C": 1.0},
        threshold=0.4,
        metrics={"roc_auc": roc_auc, "accuracy": 0.8},
        cv_metrics={"roc_auc": roc_auc},
        trials=[],
        reference=None,
        library_versions={"scikit-learn": "1.9.1"},
        code_version="src-test",
        artifact_uri=f"s3://lake/models/churn/{run_id}.skops",
        sha256="0" * 64,
    )


def connection_of(engine) -> str:
    """An Airflow connection (JSON form) for a SQLite or PostgreSQL engine."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        return json.dumps({"conn_type": "sqlite", "host": url.database})
    fields = {"host": url.host, "port": url.port, "login": url.username, "schema": url.database}
    return json.dumps({"conn_type": "postgres", **fields})


def run_dag(dag_id: str, day: dt.date | None = None, conf: dict | None = None):
    """One run of a real DAG through `dag.test()` (no retries, so a failure shows at once); the run.

    With `day`, the run's logical date is that day's midnight (UTC); without, a manual run with none.
    """
    from airflow.dag_processing.dagbag import DagBag

    file = {"ingest": "ingest.py", "train": "train.py", "score": "score.py"}[dag_id.rsplit("_", 1)[1]]
    dag = DagBag(dag_folder=str(REPO / "dags" / file)).dags[dag_id]
    for task in dag.tasks:
        task.retries = 0
    logical = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC) if day else None
    return dag.test(logical_date=logical, run_conf=conf or {})


def dags_test_output(dag_id: str, day: dt.date, conf: dict | None = None) -> list[str]:
    """`airflow dags test` of `dag_id` for `day` in a fresh process, as an operator runs it: its output
    lines (the task logs); the run must succeed."""
    import subprocess
    import sys

    airflow = Path(sys.executable).parent / "airflow"
    done = subprocess.run(
        [str(airflow), "dags", "test", dag_id, day.isoformat(), "-c", json.dumps(conf or {})],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    lines = (done.stdout + done.stderr).splitlines()
    assert done.returncode == 0, lines[-20:]
    return lines


def task_states(run) -> dict[str, str]:
    """A run's task instances' states by task id (a mapped task: its last instance's)."""
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def register_model(registry, lake, spec, frame, ds: dt.date, family: str, params: dict, run_id: str) -> int:
    """Fit `family` on `frame`, store the model file and register it (no gate); its version number."""
    from include.monitoring.reference import build_reference
    from include.registry.model_files import dump_model, store_model
    from include.training.estimators import Trial
    from include.training.tuning import fit_final, run_trial
    from tools.testkit import version_of_day

    trial = Trial(f"{family}-0", family, params)
    model = fit_final(spec, trial, frame, run_trial(spec, trial, frame).threshold)
    uri, sha = store_model(lake, spec.name, dump_model(model, {"use_case": spec.name, "ds": ds.isoformat()}))
    version = registry.register(
        version_of_day(
            spec.name,
            run_id,
            ds,
            family=family,
            artifact_uri=uri,
            sha256=sha,
            params=params,
            threshold=model.threshold,
            metrics={"roc_auc": 0.8},
            reference=build_reference(frame, spec).to_dict(),
            code_version="test",
        )
    )
    return version.version


def use_platform(monkeypatch, platform, lake_root: Path) -> None:
    """Point the platform's connection ids at `platform` and a lake folder, under ids unique to the test
    (the engine cache is keyed by connection id)."""
    suffix = uuid.uuid4().hex[:8]
    monkeypatch.setenv("PLATFORM_DB_CONN_ID", f"platform_{suffix}")
    monkeypatch.setenv("PLATFORM_LAKE_CONN_ID", f"lake_{suffix}")
    monkeypatch.setenv(f"AIRFLOW_CONN_PLATFORM_{suffix.upper()}", connection_of(platform))
    lake_conn = {"conn_type": "fs", "extra": {"path": str(lake_root)}}
    monkeypatch.setenv(f"AIRFLOW_CONN_LAKE_{suffix.upper()}", json.dumps(lake_conn))
