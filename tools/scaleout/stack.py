"""Airflow on the CeleryExecutor on this machine: api-server, scheduler, dag-processor, triggerer and N
Celery workers, every one in its own process group and all in one environment.

`make up-celery` (`python -m tools.scaleout`) and the Celery end-to-end test start it with these
functions. What it runs on:

- Airflow's metadata database and Celery's result backend: one PostgreSQL database (`airflow_celery`),
  created if missing; the broker: Redis, on its own database number (3).
- One JWT secret and API secret key for every process (made once, kept in the stack's folder):
  left unset, each process would sign with its own random key and workers would fail with
  "Invalid auth token: Signature verification failed".
- The platform: its tables in PostgreSQL (`celery_platform`), the lake in a local folder that every
  worker shares (they run on this machine; workers on several machines need S3), and the demo's
  sources (a SQLite table and a folder of billing files), seeded as `make demo` seeds them.
- The workers listen on every queue the platform uses (`Settings.queues`); each records its Celery
  node name as the task instances' host name (`tools/scaleout/hostname.py`), and imports a scoring
  shard's modules once, before its tasks fork from it (`config/airflow_local_settings.py`).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from tools.demo.airflow_api import COMPONENTS, LocalAirflow, airflow_cli

REPO = Path(__file__).resolve().parents[2]
USER = "admin"
DEFAULT_QUEUES = ("train", "score", "default")


class ServiceUnavailable(RuntimeError):
    """PostgreSQL or Redis is not reachable; the message says which, where, and how to start it."""


@dataclass(frozen=True)
class CeleryLayout:
    """Where the stack runs: its folder, ports, PostgreSQL server and databases, broker and workers."""

    home: Path
    port: int = 8091
    # The triggerer serves its logs here (the demo's `airflow standalone` takes the default 8794).
    trigger_log_port: int = 8092
    # A role that may create databases, and the database it connects to for that.
    postgres_url: str = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
    metadata_db: str = "airflow_celery"
    platform_db: str = "celery_platform"
    broker_url: str = "redis://127.0.0.1:6379/3"
    workers: int = 2
    concurrency: int = 1
    queues: tuple[str, ...] = DEFAULT_QUEUES
    password: str = "admin"

    def __post_init__(self) -> None:
        for field in ("metadata_db", "platform_db"):
            if not re.fullmatch(r"[a-z_][a-z0-9_]*", getattr(self, field)):
                raise ValueError(f"{field}={getattr(self, field)!r}: lower-case letters, digits and _ only")
        if self.workers < 1 or self.concurrency < 1:
            raise ValueError(f"workers={self.workers}, concurrency={self.concurrency}: both must be >= 1")

    def database_url(self, name: str) -> sa.URL:
        return sa.engine.make_url(self.postgres_url).set(database=name)

    @property
    def worker_components(self) -> tuple[str, ...]:
        """The workers' component names (`worker1`, ...): their log files' names."""
        return tuple(f"worker{i}" for i in range(1, self.workers + 1))


def node_name(worker: str) -> str:
    """A worker's Celery node name on this machine, e.g. `worker1@host`."""
    return f"{worker}@{socket.gethostname()}"


def check_services(layout: CeleryLayout) -> None:
    """Raise `ServiceUnavailable` if PostgreSQL or the Redis broker is down."""
    import redis

    url = sa.engine.make_url(layout.postgres_url)
    engine = sa.create_engine(url, connect_args={"connect_timeout": 5})
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError as exc:
        raise ServiceUnavailable(
            f"PostgreSQL is not reachable at {url.host}:{url.port} as {url.username!r} ({exc.orig}); "
            "start it (.ci/run does: pg_ctlcluster <version> main start)"
        ) from None
    finally:
        engine.dispose()
    try:
        redis.Redis.from_url(layout.broker_url, socket_connect_timeout=5).ping()
    except redis.RedisError as exc:
        raise ServiceUnavailable(
            f"Redis (the Celery broker) is not reachable at {layout.broker_url} ({exc}); start it "
            "(.ci/run does: redis-server --daemonize yes --bind 127.0.0.1 --port 6379)"
        ) from None


def ensure_database(layout: CeleryLayout, name: str) -> None:
    """Create the PostgreSQL database `name` unless it exists."""
    admin = sa.create_engine(layout.postgres_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            found = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
            if not found:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))  # checked by CeleryLayout
    finally:
        admin.dispose()


def shared_secrets(home: Path) -> dict[str, str]:
    """The JWT secret and API secret key every process shares: made once, kept in `home` (mode 600)."""
    path = home / "secrets.json"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        values = {"jwt_secret": secrets.token_hex(32), "api_secret_key": secrets.token_hex(32)}
        with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as file:
            json.dump(values, file)
        os.replace(temporary, path)
    return json.loads(path.read_text())


def stack_env(layout: CeleryLayout, base: Mapping[str, str]) -> dict[str, str]:
    """The one environment of every process: `base` without its Airflow settings, plus the stack's."""
    from tools.demo.seed import demo_dates

    home = layout.home
    metadata = layout.database_url(layout.metadata_db)
    platform = layout.database_url(layout.platform_db)
    keys = shared_secrets(home)
    env = {k: v for k, v in base.items() if not k.startswith("AIRFLOW")}
    # The demo's sources end on 2025-03-31: unpausing a DAG must not also schedule today's interval.
    env.setdefault("PLATFORM_DAG_END_DATE", demo_dates()[-1].isoformat())
    return {
        **env,
        # The platform's Airflow local settings: each worker preloads a scoring shard's modules.
        "PYTHONPATH": f"{REPO}:{REPO / 'config'}",
        "AIRFLOW_HOME": str(home / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        # The scheduler's cap on queued + running tasks; the workers' slots are the real limit.
        "AIRFLOW__CORE__PARALLELISM": str(max(8, 2 * layout.workers * layout.concurrency)),
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tools.scaleout.hostname.worker_hostname",
        # A loop that queued nothing sleeps 0.2 s, not 1 s: a day's shards and its publish each wait
        # for the scheduler's next loop (as `make demo` found, docs/performance.md).
        "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.2",
        # A task's end is seen within 1 s, not 5 (docs/performance.md, "A task's end").
        "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata.render_as_string(hide_password=False),
        "AIRFLOW__CELERY__BROKER_URL": layout.broker_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+"
        + metadata.set(drivername="postgresql").render_as_string(hide_password=False),
        "AIRFLOW__API_AUTH__JWT_SECRET": keys["jwt_secret"],
        "AIRFLOW__API__SECRET_KEY": keys["api_secret_key"],
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",  # user:role
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(layout.trigger_log_port),
        "AIRFLOW_CONN_PLATFORM_DB": json.dumps(
            {
                "conn_type": "postgres",
                "host": platform.host,
                "port": platform.port,
                "login": platform.username,
                **({"password": platform.password} if platform.password else {}),
                "schema": platform.database,
            }
        ),
        "AIRFLOW_CONN_PLATFORM_LAKE": json.dumps({"conn_type": "fs", "extra": {"path": str(home / "lake")}}),
        "AIRFLOW_CONN_CHURN_SOURCE_DB": json.dumps({"conn_type": "sqlite", "host": str(home / "source.db")}),
        "AIRFLOW_CONN_CHURN_SOURCE_FILES": json.dumps(
            {"conn_type": "fs", "extra": {"path": str(home / "bucket")}}
        ),
    }


def prepare(layout: CeleryLayout, env: dict[str, str]) -> None:
    """Create the databases if missing, seed the demo's sources, migrate the platform's tables and
    Airflow's database (all idempotent)."""
    from include.io.stores import LocalStore
    from include.platform.schema import upgrade
    from tools.demo.seed import seed

    home = layout.home
    for folder in ("lake", "bucket", "airflow", "logs"):
        (home / folder).mkdir(parents=True, exist_ok=True)
    (home / "passwords.json").write_text(json.dumps({USER: layout.password}))
    for name in (layout.metadata_db, layout.platform_db):
        ensure_database(layout, name)
    source = sa.create_engine(f"sqlite:///{home / 'source.db'}")
    platform = sa.create_engine(layout.database_url(layout.platform_db))
    try:
        seed(source, LocalStore(home / "bucket"))
        upgrade(platform)
    finally:
        source.dispose()
        platform.dispose()
    airflow_cli(["db", "migrate"], env, home / "logs" / "cli.log")


def write_env_file(path: Path, env: Mapping[str, str]) -> None:
    """The stack's settings as `export` lines (mode 600: the JWT secret is in it), for `source` in a
    shell that starts another worker or runs the Airflow CLI against the stack."""
    import shlex

    lines = [
        f"export {name}={shlex.quote(value)}\n"
        for name, value in sorted(env.items())
        if name.startswith(("AIRFLOW", "PLATFORM_")) or name == "PYTHONPATH"
    ]
    temporary = path.with_suffix(".tmp")
    with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as file:
        file.writelines(lines)
    os.replace(temporary, path)


class CeleryAirflow(LocalAirflow):
    """Airflow's components and the layout's Celery workers; healthy once the API reports the scheduler,
    dag-processor and triggerer healthy and every worker answers the broker on its queues."""

    def __init__(self, layout: CeleryLayout, env: dict[str, str]) -> None:
        super().__init__(env, layout.home / "logs", layout.port)
        self.layout = layout
        self.components = (*COMPONENTS, *layout.worker_components)

    def command(self, component: str) -> list[str]:
        if component not in self.layout.worker_components:
            return super().command(component)
        return [
            *("airflow", "celery", "worker", "--celery-hostname", node_name(component)),
            *("--queues", ",".join(self.layout.queues), "--concurrency", str(self.layout.concurrency)),
            # Every worker writes task logs into the one local log folder the api-server reads.
            "--skip-serve-logs",
        ]

    def component_env(self, component: str) -> dict[str, str]:
        if component not in self.layout.worker_components:
            return self.env
        return {**self.env, "PLATFORM_WORKER_NAME": node_name(component)}

    def _healthy(self) -> bool:
        if not super()._healthy():
            return False
        answering = self.workers()
        return all(
            set(self.layout.queues) <= set(answering.get(node_name(w), ()))
            for w in self.layout.worker_components
        )

    def workers(self) -> dict[str, list[str]]:
        """The Celery workers answering the broker, with the queues each consumes (empty if none)."""
        out = subprocess.run(
            ["airflow", "celery", "list-workers", "--output", "json"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if out.returncode:
            return {}
        return {w["worker_name"]: w["queues"] for w in json.loads(out.stdout or "[]")}

    def describe(self) -> str:
        """What runs where: URLs and login, each process's PID and log, the databases, broker and lake."""
        layout, home = self.layout, self.layout.home
        lines = [
            f"Airflow on the CeleryExecutor: {self.url}  (user {USER!r}, password {layout.password!r})",
            f"  REST API {self.url}/api/v2   execution API {self.url}/execution/",
        ]
        for component, process in self.processes.items():
            where = ""
            if component in layout.worker_components:
                queues = ",".join(layout.queues)
                where = f"  node {node_name(component)}, queues {queues}, concurrency {layout.concurrency}"
            lines.append(f"  {component:<14} pid {process.pid:<8} log {self.log_file(component)}{where}")
        metadata = layout.database_url(layout.metadata_db).set(drivername="postgresql")
        lines += [
            f"  metadata database and result backend: {metadata.render_as_string(hide_password=True)}",
            f"  broker: {layout.broker_url}",
            "  platform tables: "
            + layout.database_url(layout.platform_db).set(drivername="postgresql").render_as_string(),
            f"  lake: {home / 'lake'}   sources: {home / 'source.db'}, {home / 'bucket'}",
            f"  task logs: {home / 'airflow' / 'logs'}",
        ]
        return "\n".join(lines)
