"""`make demo`: seed the demo sources and run every pipeline stage through a real Airflow.

Everything lives under `.demo/` (SQLite for Airflow and the platform, folders for the bucket and the
lake). Three phases, each queued before Airflow starts (see `queue_backfill`): a scheduler-run
backfill ingests all 90 demo days in parallel; two training runs make a champion as of 2025-03-01
and a challenger as of 2025-03-31; a backfill scores every day from the first champion's on, each
with the champion of its day. Rerunning gives the same partitions, predictions and counts: the
backfills reprocess every day in place and the training runs are kept.

    python -m tools.demo.run            # the demo, then a summary
    python -m tools.demo.run --serve    # Airflow's UI and scheduler on the demo (make up)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from include.ui import page_urls
from tools.demo.airflow_api import (
    AirflowApi,
    Progress,
    StandaloneAirflow,
    airflow_cli,
    run_states,
    wait_for_backfill,
    wait_for_runs,
)
from tools.demo.seed import demo_dates

log = logging.getLogger(__name__)

DEMO_USER, DEMO_PASSWORD = "admin", "admin"
# The first champion, then a candidate a month later that must beat it on its own holdout.
TRAIN_AS_OF = ("2025-03-01", "2025-03-31")


def demo_port() -> int:
    """The demo's Airflow port: `PLATFORM_DEMO_PORT`, else 8080."""
    return int(os.environ.get("PLATFORM_DEMO_PORT", "8080"))


def demo_home() -> Path:
    return Path(os.environ["AIRFLOW_HOME"]).parent


def prepare(env: dict[str, str]) -> None:
    """Seed the sources and migrate Airflow's database (both idempotent)."""
    from include.io.connections import engine_for, store_for
    from include.platform.schema import upgrade
    from tools.demo.seed import seed

    airflow_home = Path(env["AIRFLOW_HOME"])
    airflow_home.mkdir(parents=True, exist_ok=True)
    Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]).write_text(
        json.dumps({DEMO_USER: DEMO_PASSWORD})
    )
    for folder in ("lake", "bucket"):
        (demo_home() / folder).mkdir(exist_ok=True)
    counts = seed(engine_for("churn_source_db"), store_for("churn_source_files"))
    upgrade(engine_for("platform_db"))
    log.info("seeded the sources: %(rows)d customers over %(days)d days, %(files)d billing files", counts)
    for args in (["db", "migrate"], ["dags", "reserialize"]):
        _airflow(args, env)


def _airflow(args: list[str], env: dict[str, str]) -> None:
    airflow_cli(args, env, demo_home() / "logs" / "cli.log")


def queue_backfill(env: dict[str, str], dag_id: str, first: str, last: str) -> None:
    """Create a backfill over [first, last] that reprocesses done days; the scheduler runs it later.

    Created while no scheduler runs: on SQLite, Airflow's scheduler can crash on a backfill created
    under its feet (StaleDataError), so the demo queues work first and starts Airflow after. The DAG
    stays paused until Airflow is healthy (see `start`): a task started before the API server is up
    cannot report to it and fails.
    """
    log.info("%s: queueing a backfill of %s..%s", dag_id, first, last)
    _airflow(["dags", "pause", dag_id], env)
    _airflow(
        [
            *("backfill", "create", "--dag-id", dag_id, "--from-date", first, "--to-date", last),
            *("--reprocess-behavior", "completed", "--max-active-runs", "8"),
        ],
        env,
    )


def queue_runs(env: dict[str, str], dag_id: str, days: tuple[str, ...]) -> list[str]:
    """Trigger one run per day (logical date at midnight UTC) unless it exists; the run ids.

    A rerun of the demo keeps the training runs (and so the registry) it made the first time.
    """
    log.info("%s: queueing runs as of %s", dag_id, ", ".join(days))
    _airflow(["dags", "pause", dag_id], env)
    from include.io.connections import engine_for
    from include.registry.registry import Registry

    existing = {v.run_id for v in Registry(engine_for("platform_db")).versions("churn")}
    run_ids = [f"demo__{day}" for day in days]
    for day, run_id in zip(days, run_ids, strict=True):
        if run_id not in existing:
            _airflow(
                ["dags", "trigger", dag_id, "--logical-date", f"{day}T00:00:00+00:00", "--run-id", run_id],
                env,
            )
    return run_ids


@contextlib.contextmanager
def start(env: dict[str, str], dag_id: str) -> Iterator[AirflowApi]:
    """`airflow standalone` until the block ends, with `dag_id` unpaused once Airflow is healthy."""
    log.info("%s: starting Airflow (about 20-30 s)", dag_id)
    with StandaloneAirflow(env, demo_home() / "logs" / "airflow.log", demo_port()) as airflow:
        log.info("%s: Airflow is up at %s; unpausing", dag_id, airflow.url)
        api = AirflowApi(airflow.url, DEMO_USER, DEMO_PASSWORD)
        api.patch(f"/dags/{dag_id}", {"is_paused": False})
        yield api


def finish_backfill(api: AirflowApi, dag_id: str, days: int) -> dict[str, int]:
    """Wait for the DAG's newest backfill of `days` days, logging progress; its runs counted by state.

    A day's scoring is seven tasks, each a process start of several seconds on a loaded 2-core
    machine: 31 days took 12 minutes beside a CI run, so the wait allows a minute a day.
    """
    backfill_id = max(b["id"] for b in api.get(f"/backfills?dag_id={dag_id}")["backfills"])
    wait_for_backfill(
        api, backfill_id, timeout=60 * max(days, 10), progress=Progress(f"{dag_id} backfill", days)
    )
    return dict(Counter(s for r, s in run_states(api, dag_id).items() if r.startswith("backfill__")))


def run_demo(env: dict[str, str]) -> None:
    started = time.perf_counter()
    prepare(env)
    prepared = time.perf_counter()
    days = demo_dates()
    queue_backfill(env, "churn_ingest", days[0].isoformat(), days[-1].isoformat())
    with start(env, "churn_ingest") as api:
        ingest_states = finish_backfill(api, "churn_ingest", len(days))
    train_runs = queue_runs(env, "churn_train", TRAIN_AS_OF)
    with start(env, "churn_train") as api:
        trained = wait_for_runs(
            api, "churn_train", train_runs, progress=Progress("churn_train", len(train_runs))
        )
    scored = [d for d in days if d.isoformat() >= TRAIN_AS_OF[0]]
    queue_backfill(env, "churn_score", scored[0].isoformat(), scored[-1].isoformat())
    with start(env, "churn_score") as api:
        score_states = finish_backfill(api, "churn_score", len(scored))
    finished = time.perf_counter()
    from tools.demo.summary import print_summary

    print_summary(
        f"http://127.0.0.1:{demo_port()}",
        {
            "churn_ingest backfill runs": ingest_states,
            **{
                f"churn_train as of {day}": trained[r] for day, r in zip(TRAIN_AS_OF, train_runs, strict=True)
            },
            "churn_score backfill runs": score_states,
            "seconds: seed + migrate": round(prepared - started, 1),
            "seconds: Airflow (ingest, training, scoring)": round(finished - prepared, 1),
        },
    )


def serve(env: dict[str, str]) -> None:
    prepare(env)
    airflow = StandaloneAirflow(env, demo_home() / "logs" / "airflow.log", demo_port())
    airflow.start()
    nav, page = page_urls(airflow.url, "churn")
    print(f"Airflow is up: {airflow.url}  (user {DEMO_USER!r}, password {DEMO_PASSWORD!r}); Ctrl-C stops it.")
    print(f"The ML platform page: {nav}  (menu entry 'ML platform'; the page alone: {page})")
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
    env = dict(os.environ)  # the Makefile's demo settings (`make -s demo-env` prints them)
    # `kill` (SIGTERM) unwinds like Ctrl-C, so Airflow's process group is stopped, not orphaned.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    serve(env) if args.serve else run_demo(env)


if __name__ == "__main__":
    main()
