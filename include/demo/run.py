"""`make demo`: seed the demo sources and run every pipeline stage through a real Airflow.

Everything lives under `.demo/` (SQLite for Airflow and the platform, folders for the bucket and the
lake). The ingest of all 90 demo days is one scheduler-run backfill, so the days run in parallel.
Rerunning gives the same partitions and counts: the backfill reprocesses every day in place.

    python -m include.demo.run            # the demo, then a summary
    python -m include.demo.run --serve    # Airflow's UI and scheduler on the demo (make up)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from include.demo.airflow_api import (
    AirflowApi,
    AirflowApiError,
    StandaloneAirflow,
    run_states,
    trigger_and_wait,
    wait_for_backfill,
)
from include.demo.seed import demo_dates

log = logging.getLogger(__name__)

DEMO_USER, DEMO_PASSWORD = "admin", "admin"
# The first champion, then a candidate a month later that must beat it on its own holdout.
TRAIN_AS_OF = ("2025-03-01", "2025-03-31")


def demo_home() -> Path:
    return Path(os.environ["AIRFLOW_HOME"]).parent


def prepare(env: dict[str, str]) -> None:
    """Seed the sources and migrate Airflow's database (both idempotent)."""
    from include.demo.seed import seed
    from include.io.connections import engine_for, store_for

    airflow_home = Path(env["AIRFLOW_HOME"])
    airflow_home.mkdir(parents=True, exist_ok=True)
    Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]).write_text(
        json.dumps({DEMO_USER: DEMO_PASSWORD})
    )
    for folder in ("lake", "bucket"):
        (demo_home() / folder).mkdir(exist_ok=True)
    counts = seed(engine_for("churn_source_db"), store_for("churn_source_files"))
    log.info("seeded the sources: %(rows)d customers over %(days)d days, %(files)d billing files", counts)
    for args in (["db", "migrate"], ["dags", "reserialize"]):
        _airflow(args, env)


def _airflow(args: list[str], env: dict[str, str]) -> None:
    logs = demo_home() / "logs"
    logs.mkdir(exist_ok=True)
    with (logs / "cli.log").open("ab") as out:
        subprocess.run(
            [str(Path(sys.executable).parent / "airflow"), *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=True,
        )


def backfill(api: AirflowApi, dag_id: str, first: str, last: str) -> dict[str, int]:
    """Run one backfill over [first, last] (reprocessing done days) and count its runs by state."""
    api.patch(f"/dags/{dag_id}", {"is_paused": False})
    body = {
        "dag_id": dag_id,
        "from_date": f"{first}T00:00:00Z",
        "to_date": f"{last}T00:00:00Z",
        "reprocess_behavior": "completed",
        "max_active_runs": 8,
    }
    for attempt in range(10):
        try:
            created = api.post("/backfills", body)
            break
        except AirflowApiError as exc:
            # SQLite: the scheduler may hold the write lock for a moment ("Database is locked").
            if exc.status != 503 or attempt == 9:
                raise
            time.sleep(1 + attempt)
    wait_for_backfill(api, created["id"])
    states: dict[str, int] = {}
    for run_id, state in run_states(api, dag_id).items():
        if run_id.startswith("backfill__"):
            states[state] = states.get(state, 0) + 1
    return states


def run_demo(env: dict[str, str]) -> None:
    started = time.perf_counter()
    prepare(env)
    prepared = time.perf_counter()
    days = demo_dates()
    with StandaloneAirflow(env, demo_home() / "logs" / "airflow.log") as airflow:
        api = AirflowApi(airflow.url, DEMO_USER, DEMO_PASSWORD)
        ingest_states = backfill(api, "churn_ingest", days[0].isoformat(), days[-1].isoformat())
        api.patch("/dags/churn_train", {"is_paused": False})
        trained = {day: trigger_and_wait(api, "churn_train", day) for day in TRAIN_AS_OF}
    finished = time.perf_counter()
    from include.demo.summary import print_summary

    print_summary(
        {
            "churn_ingest backfill runs": ingest_states,
            **{f"churn_train as of {day}": state for day, state in trained.items()},
            "seconds: seed + migrate": round(prepared - started, 1),
            "seconds: Airflow (start, backfill, stop)": round(finished - prepared, 1),
        }
    )


def serve(env: dict[str, str]) -> None:
    prepare(env)
    airflow = StandaloneAirflow(env, demo_home() / "logs" / "airflow.log")
    airflow.start()
    print(f"Airflow is up: {airflow.url}  (user {DEMO_USER!r}, password {DEMO_PASSWORD!r}); Ctrl-C stops it.")
    try:
        airflow.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        airflow.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help="start Airflow on the demo and keep it up")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    env = dict(os.environ)
    env.setdefault("PLATFORM_DAG_END_DATE", demo_dates()[-1].isoformat())
    env.setdefault("PLATFORM_TASK_RETRIES", "0")
    os.environ.update(env)
    serve(env) if args.serve else run_demo(env)


if __name__ == "__main__":
    main()
