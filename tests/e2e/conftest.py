"""A real Airflow for the end-to-end tests: scheduler, dag-processor, triggerer and API server on loopback.

One Airflow per metadata database (PostgreSQL for the session, SQLite for its module), each in a private
temporary home with the demo's seeded sources (SQLite table, folder bucket), a folder lake and the
platform's tables (PostgreSQL or SQLite). `make test-e2e` runs them; `make test` leaves them out.
In CI (`CI` set) a missing PostgreSQL, Chromium or Playwright fails the run instead of skipping it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from include.demo.airflow_api import (
    AirflowApi,
    LocalAirflow,
    create_backfill,
    trigger_run,
    wait_for_backfill,
    wait_for_dag,
    wait_for_runs,
)
from include.demo.seed import demo_dates, load_telco, seed, split_sources
from include.io.stores import LocalStore
from include.platform.schema import upgrade
from include.usecases.spec import get_spec
from tests.conftest import REPO, free_port, postgres_database, unavailable

USER, PASSWORD = "admin", "e2e-admin"
CHROMIUM = "/usr/bin/chromium"
AIRFLOW = str(Path(sys.executable).parent / "airflow")
ARTIFACTS = REPO / ".e2e-artifacts"


def days(first: str, last: str) -> list[str]:
    """The demo's days in [first, last], as `YYYY-MM-DD`."""
    return [str(d) for d in demo_dates() if first <= str(d) <= last]


def succeeded(runs: dict[str, dict], first: str, last: str) -> bool:
    """Whether there is exactly one run per day of [first, last], all successful."""
    return {ds: run["state"] for ds, run in runs.items()} == dict.fromkeys(days(first, last), "success")


@dataclass
class Platform:
    """A running Airflow on the platform, and what a user would do and check with it.

    Checks go through the project's CLI (`cli("predictions", "churn", "--ds", day)`) and the lake.
    """

    home: Path
    env: dict[str, str]
    airflow: LocalAirflow
    api: AirflowApi

    def trigger(self, dag_id: str, conf: dict, logical_date: str | None = None) -> str:
        """Trigger one run through REST; its run id."""
        return trigger_run(self.api, dag_id, conf, logical_date)

    def wait(self, dag_id: str, run_ids: list[str], timeout: float = 300) -> dict[str, str]:
        """Wait for the runs to finish; their states by run id."""
        self.airflow.check_running()
        return wait_for_runs(self.api, dag_id, run_ids, timeout)

    def run_dag(self, dag_id: str, dates: list[str], **conf) -> dict[str, str]:
        """Trigger one run per day (`ds` in the conf, no logical date), wait, check that all succeeded;
        the run ids by day."""
        run_ids = {day: self.trigger(dag_id, {"ds": day, **conf}) for day in dates}
        states = self.wait(dag_id, list(run_ids.values()))
        assert set(states.values()) == {"success"}, states
        return run_ids

    def backfill(self, dag_id: str, first: str, last: str, **options) -> dict[str, dict]:
        """Create a backfill through REST and wait for it; its runs by day."""
        backfill = create_backfill(self.api, dag_id, first, last, **options)
        wait_for_backfill(self.api, backfill["id"], timeout=300)
        self.airflow.check_running()
        return self.backfill_runs(dag_id, first, last)

    def backfill_runs(self, dag_id: str, first: str, last: str) -> dict[str, dict]:
        """The backfill runs whose logical date is in [first, last], by day."""
        runs = self.api.get(f"/dags/{dag_id}/dagRuns?run_type=backfill&limit=1000")["dag_runs"]
        return {r["logical_date"][:10]: r for r in runs if first <= r["logical_date"][:10] <= last}

    def cli(self, *args: str) -> list[dict]:
        """The platform's CLI (`python -m include.cli ... --json`) on this platform's connections."""
        out = subprocess.run(
            [sys.executable, "-m", "include.cli", *args, "--json"],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        )
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def ingest_records(self) -> dict[str, dict]:
        """The run records of churn_ingest, by day."""
        records = self.cli("runs", "churn")
        assert len(records) == len({r["ds"] for r in records}), "two run records for one day"
        return {r["ds"]: r for r in records}

    def partitions(self, zone: str = "raw", use_case: str = "churn") -> dict[str, list[str]]:
        """The files in each day's folder of the lake, by day."""
        root = self.home / "lake" / zone / use_case
        return {
            d.name.removeprefix("ds="): sorted(f.name for f in d.iterdir()) for d in sorted(root.glob("ds=*"))
        }

    def partition_rows(
        self, ds: str, zone: str = "raw", use_case: str = "churn", column: str = "customerID"
    ) -> list[str]:
        """The entity ids in one day's partition."""
        path = self.home / "lake" / zone / use_case / f"ds={ds}" / "part-0.parquet"
        return pq.read_table(path, columns=[column]).column(column).to_pylist()


@pytest.fixture(scope="session")
def expected_rows() -> dict[str, int]:
    """How many customers the demo's seed puts on each day: what a clean ingest writes."""
    snapshots, _ = split_sources(get_spec("churn"), load_telco(), demo_dates())
    return {str(day): n for day, n in snapshots["snapshot_date"].value_counts().items()}


def prepare(home: Path, metadata_url: str, platform_url: sa.URL, platform_conn: dict) -> dict[str, str]:
    """Seed the sources, create the platform's tables, migrate Airflow's database; the environment."""
    for folder in ("lake", "bucket", "airflow"):
        (home / folder).mkdir()
    (home / "passwords.json").write_text(json.dumps({USER: PASSWORD}))
    seed(sa.create_engine(f"sqlite:///{home / 'source.db'}"), LocalStore(home / "bucket"))
    platform = sa.create_engine(platform_url)
    upgrade(platform)
    platform.dispose()
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PLATFORM_"))}
    env = {
        **inherited,
        "AIRFLOW_HOME": str(home / "airflow"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url,
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",  # user:role
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        # Separate processes must share these (standalone generates them once for all).
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_hex(32),
        # Free ports, so the suite runs beside the demo or another suite.
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "PYTHONPATH": str(REPO),
        "PLATFORM_TASK_RETRIES": "0",
        "PLATFORM_DAG_END_DATE": demo_dates()[-1].isoformat(),
        "AIRFLOW_CONN_PLATFORM_DB": json.dumps(platform_conn),
        "AIRFLOW_CONN_PLATFORM_LAKE": json.dumps({"conn_type": "fs", "extra": {"path": str(home / "lake")}}),
        "AIRFLOW_CONN_CHURN_SOURCE_DB": json.dumps({"conn_type": "sqlite", "host": str(home / "source.db")}),
        "AIRFLOW_CONN_CHURN_SOURCE_FILES": json.dumps(
            {"conn_type": "fs", "extra": {"path": str(home / "bucket")}}
        ),
    }
    airflow_cli(env, "db", "migrate")
    return env


def airflow_cli(env: dict[str, str], *args: str) -> None:
    """The Airflow CLI in the platform's environment (before Airflow starts)."""
    out = subprocess.run([AIRFLOW, *args], env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, f"airflow {' '.join(args)}: {out.stderr}"


@contextlib.contextmanager
def running(home: Path, env: dict[str, str], dag_ids: tuple[str, ...]) -> Iterator[Platform]:
    """Start Airflow, unpause `dag_ids` once parsed; stop every component at the end."""
    airflow = LocalAirflow(env, home / "logs", port=free_port())
    with airflow:
        api = AirflowApi(airflow.url, USER, PASSWORD)
        for dag_id in dag_ids:
            wait_for_dag(api, dag_id)
            api.patch(f"/dags/{dag_id}", {"is_paused": False})
        yield Platform(home, airflow.env, airflow, api)


@pytest.fixture(scope="session")
def pg_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """Airflow on a fresh PostgreSQL metadata database, the platform's tables in another one.

    Its home (component logs under `logs/`, task logs under `airflow/logs/`) stays in pytest's
    temporary folder for the last three sessions.
    """
    with postgres_database("e2e_airflow") as metadata, postgres_database("e2e_platform") as platform_db:
        conn = {
            "conn_type": "postgres",
            "host": platform_db.host,
            "port": platform_db.port,
            "login": platform_db.username,
            "schema": platform_db.database,
        }
        home = tmp_path_factory.mktemp("postgres")
        env = prepare(home, metadata.render_as_string(hide_password=False), platform_db, conn)
        with running(home, env, ("churn_ingest", "churn_train", "churn_score")) as platform:
            yield platform


@pytest.fixture
def page():
    """A headless Chromium page; Playwright's own browser download is never used."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("Playwright is not installed (requirements-dev.txt)")
    if not shutil.which(CHROMIUM):
        unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        yield browser.new_page(viewport={"width": 1400, "height": 900})
        browser.close()
