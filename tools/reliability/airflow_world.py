"""A world with a real Airflow on it: scheduler, dag-processor, triggerer and API server on loopback.

`prepare` seeds a `World` (the demo's sources, a folder lake, the platform's tables) in a home of
its own and returns the environment every Airflow component runs in; `running` starts Airflow
(`LocalAirflow`) on it and unpauses the DAGs. `Platform` is what a user then does and checks:
trigger runs and backfills through REST, read the run records through the project's CLI, list the
lake. The end-to-end tests (`tests/e2e/conftest.py`) and the reliability suite's faults use it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from tools.demo.airflow_api import (
    AirflowApi,
    LocalAirflow,
    airflow_cli,
    create_backfill,
    trigger_run,
    wait_for_backfill,
    wait_for_dag,
    wait_for_runs,
)
from tools.demo.seed import demo_dates
from tools.localhost import free_port
from tools.reliability.world import make_world

REPO = Path(__file__).resolve().parents[2]
USER, PASSWORD = "admin", "e2e-admin"


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
        if set(states.values()) != {"success"}:
            raise RuntimeError(f"{dag_id}: not every run succeeded: {states}")
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
        if out.returncode != 0:
            raise RuntimeError(f"include.cli {' '.join(args)}: {out.stderr}")
        return json.loads(out.stdout)

    def ingest_records(self) -> dict[str, dict]:
        """The run records of churn_ingest, by day."""
        records = self.cli("runs", "churn")
        if len(records) != len({r["ds"] for r in records}):
            raise RuntimeError("two run records for one day")
        return {r["ds"]: r for r in records}

    def partitions(self, zone: str = "raw", use_case: str = "churn") -> dict[str, list[str]]:
        """The files in each day's folder of the lake, by day."""
        root = self.home / "lake" / zone / use_case
        return {
            d.name.removeprefix("ds="): sorted(f.name for f in d.iterdir()) for d in sorted(root.glob("ds=*"))
        }

    def partition_rows(self, ds: str) -> list[str]:
        """The customer ids in one day's churn partition."""
        path = self.home / "lake" / "raw" / "churn" / f"ds={ds}" / "part-0.parquet"
        return pq.read_table(path, columns=["customerID"]).column("customerID").to_pylist()


def prepare(home: Path, metadata_url: str, platform_url: str) -> dict[str, str]:
    """Seed a world in `home`, migrate Airflow's database at `metadata_url`; the environment.

    The platform's tables are at `platform_url`; Airflow's home is `home / "airflow"`, the lake
    `home / "lake"`. Tasks are not retried and no DAG schedules past the demo's last day.
    """
    world = make_world(home, platform_url)
    (home / "airflow").mkdir()
    (home / "passwords.json").write_text(json.dumps({USER: PASSWORD}))
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
        # A task's end is seen within 1 s, not 5 (docs/performance.md, "A task's end").
        "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",  # user:role
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        # Separate processes must share these (standalone generates them once for all).
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_hex(32),
        # Free ports, so the suite runs beside the demo or another suite.
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        # The platform's Airflow local settings: the scheduler preloads the tasks' modules.
        "PYTHONPATH": f"{REPO}:{REPO / 'config'}",
        "PLATFORM_TASK_RETRIES": "0",
        "PLATFORM_DAG_END_DATE": demo_dates()[-1].isoformat(),
        **world.env,
    }
    airflow_cli(["db", "migrate"], env, home / "logs" / "cli.log")
    return env


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
