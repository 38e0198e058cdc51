"""`make demo`: seed the demo sources and run every pipeline stage through a real Airflow.

Everything lives under `.demo/` (SQLite for Airflow and the platform, folders for the bucket and the
lake). The backfills are queued before Airflow starts (see `queue_backfill`), each DAG paused; then
one Airflow runs the phases, each unpausing its DAG when what it reads is there: a scheduler-run
backfill ingests all 90 demo days in parallel; two training runs make a champion as of 2025-03-01
(started as soon as the 60 days of its window are in) and a challenger as of 2025-03-31 (once every
day is); the backfill scores every day from the first champion's on, each with the champion of its
day, from the first gate's decision on, beside the second training run; then the evaluation backfill
ingests each day's observed outcomes (from 2025-03-08, the first day a scored customer's churn is
known) and judges the days whose outcomes have matured (a week after their snapshot). The summary
waits for what scoring set off (a retrain on drift) before it reads the registry. Rerunning gives the
same partitions, predictions and counts: the backfills reprocess every day in place and the training runs
are kept.

    python -m tools.demo.run            # the demo, then a summary
    python -m tools.demo.run --serve    # Airflow's UI and scheduler on the demo (make up)
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

from include.ui import page_urls
from tools.demo.airflow_api import (
    AirflowApi,
    AirflowApiError,
    LocalAirflow,
    Progress,
    StandaloneAirflow,
    airflow_cli,
    run_states,
    wait_for_backfill,
    wait_for_runs,
)
from tools.demo.seed import OUTCOME_AFTER, demo_dates

log = logging.getLogger(__name__)

DEMO_USER, DEMO_PASSWORD = "admin", "admin"
INGEST, TRAIN, SCORE, EVALUATE = "churn_ingest", "churn_train", "churn_score", "churn_evaluate"
DEMO_DAGS = (INGEST, TRAIN, SCORE, EVALUATE)
# The first champion, then a candidate a month later that must beat it on its own holdout.
TRAIN_AS_OF = ("2025-03-01", "2025-03-31")


def demo_port() -> int:
    """The demo's Airflow port: `PLATFORM_DEMO_PORT`, else 8080."""
    return int(os.environ.get("PLATFORM_DEMO_PORT", "8080"))


def demo_home() -> Path:
    return Path(os.environ["AIRFLOW_HOME"]).parent


def prepare(env: dict[str, str]) -> bool:
    """Seed the sources and migrate Airflow's database (both idempotent); whether that database is new."""
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
    new = not (airflow_home / "airflow.db").exists()
    for args in (["db", "migrate"], ["dags", "reserialize"]):
        _airflow(args, env)
    return new


def _airflow(args: list[str], env: dict[str, str]) -> None:
    airflow_cli(args, env, demo_home() / "logs" / "cli.log")


def pause_all(env: dict[str, str]) -> None:
    """Pause the demo's DAGs, which a rerun finds unpaused (a new database has them paused already):
    no task may start before the API server is up, as it could not report to it and would fail; each
    phase unpauses its DAG."""
    pattern = "^(" + "|".join(DEMO_DAGS) + ")$"
    _airflow(["dags", "pause", "--treat-dag-id-as-regex", "--yes", pattern], env)


def queue_backfill(env: dict[str, str], dag_id: str, first: str, last: str) -> None:
    """Create a backfill over [first, last] that reprocesses done days; the scheduler runs it later.

    Created while no scheduler runs: on SQLite, Airflow refuses a backfill created through REST under a
    running scheduler ("Backfill creation is not supported on SQLite under concurrent access", and the
    scheduler then died; tests/e2e/test_sqlite.py), so the demo queues its backfills first. The DAG is
    paused (`pause_all`) until its phase.
    """
    log.info("%s: queueing a backfill of %s..%s", dag_id, first, last)
    _airflow(
        [
            *("backfill", "create", "--dag-id", dag_id, "--from-date", first, "--to-date", last),
            *("--reprocess-behavior", "completed", "--max-active-runs", "8"),
        ],
        env,
    )


def training_window(as_of: str) -> tuple[str, str]:
    """The first and last day a training run as of `as_of` reads (the spec's `training.window_days`)."""
    from include.config import Settings
    from include.usecases.spec import get_spec

    last = dt.date.fromisoformat(as_of)
    first = last - dt.timedelta(days=get_spec("churn", Settings.from_env().spec_dir).training.window_days - 1)
    return first.isoformat(), last.isoformat()


def wait_for_days(api: AirflowApi, dag_id: str, first: str, last: str, timeout: float = 900) -> None:
    """Wait until the backfill runs of `dag_id` for every day in [first, last] have succeeded.

    Raises:
        RuntimeError: when one of them fails (what depends on the days must not start).
        TimeoutError: after `timeout` seconds.
    """
    days = (dt.date.fromisoformat(last) - dt.date.fromisoformat(first)).days + 1
    window = f"run_type=backfill&logical_date_gte={first}T00:00:00Z&logical_date_lte={last}T00:00:00Z&limit=1"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if api.get(f"/dags/{dag_id}/dagRuns?{window}&state=failed")["total_entries"]:
            raise RuntimeError(f"{dag_id}: a run for a day in {first}..{last} failed; see the Airflow UI")
        if api.get(f"/dags/{dag_id}/dagRuns?{window}&state=success")["total_entries"] == days:
            return
        time.sleep(2)
    raise TimeoutError(f"{dag_id}: the days {first}..{last} not all done after {timeout:.0f}s")


# Tries of one REST write against the demo's SQLite database, which one writer holds at a time.
TRIGGER_ATTEMPTS = 5


def trigger_runs(api: AirflowApi, dag_id: str, days: tuple[str, ...]) -> list[str]:
    """Trigger one run per day (logical date at midnight UTC) unless it exists; the run ids.

    A rerun of the demo keeps the training runs (and so the registry) it made the first time.
    """
    log.info("%s: triggering runs as of %s", dag_id, ", ".join(days))
    run_ids = [f"demo__{day}" for day in days]
    for day, run_id in zip(days, run_ids, strict=True):
        try:
            api.get(f"/dags/{dag_id}/dagRuns/{run_id}")
            continue  # made by an earlier demo: kept
        except AirflowApiError as exc:
            if exc.status != 404:
                raise
        body = {"dag_run_id": run_id, "logical_date": f"{day}T00:00:00Z", "conf": {}}
        retrying_busy(lambda body=body: api.post(f"/dags/{dag_id}/dagRuns", body), f"{dag_id} {day}")
    return run_ids


@contextlib.contextmanager
def start(env: dict[str, str]) -> Iterator[AirflowApi]:
    """Airflow's scheduler, dag-processor, triggerer and API server until the block ends (each logging
    to `.demo/logs/<component>.log`), with a client of the REST API.

    The components themselves rather than `airflow standalone`, which runs the same four after a
    database check of its own: healthy in about 10 s instead of 20. Nothing runs when the block ends
    (the summary has waited), so the components get 5 s to stop before they are killed.
    """
    log.info("starting Airflow (about 10-20 s)")
    with LocalAirflow(env, demo_home() / "logs", demo_port(), stop_timeout=5) as airflow:
        log.info("Airflow is up at %s", airflow.url)
        yield AirflowApi(airflow.url, DEMO_USER, DEMO_PASSWORD)


def unpause(api: AirflowApi, dag_id: str) -> None:
    log.info("%s: unpausing", dag_id)
    retrying_busy(lambda: api.patch(f"/dags/{dag_id}", {"is_paused": False}), f"{dag_id} unpause")


def retrying_busy(write: Callable[[], object], what: str) -> None:
    """Make one REST write, again if it met a busy database: SQLite takes one writer at a time, and
    the API server's write can lose to the scheduler's (HTTP 500 "Database error"). A trigger
    whose write landed before its answer was lost meets its own run (409): done."""
    for attempt in range(TRIGGER_ATTEMPTS):
        try:
            write()
            return
        except AirflowApiError as exc:
            if exc.status == 409 and attempt:
                return
            if exc.status != 500 or attempt == TRIGGER_ATTEMPTS - 1:
                raise
            log.warning("%s met a busy database, retrying: %s", what, exc)
            time.sleep(2)


def finish_backfill(api: AirflowApi, dag_id: str, days: int) -> dict[str, int]:
    """Wait for the DAG's newest backfill of `days` days, logging progress; its runs counted by state.

    A day's scoring is seven tasks: the wait allows half a minute a day, ten times what one takes here.
    """
    backfill_id = max(b["id"] for b in api.get(f"/backfills?dag_id={dag_id}")["backfills"])
    wait_for_backfill(
        api, backfill_id, timeout=30 * max(days, 10), progress=Progress(f"{dag_id} backfill", days)
    )
    return dict(Counter(s for r, s in run_states(api, dag_id).items() if r.startswith("backfill__")))


class Phases:
    """Seconds per phase of the demo, logged as each ends and listed in the summary."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.last = time.perf_counter()

    def done(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[phase] = round(now - self.last, 1)
        self.last = now
        log.info("phase done: %s in %.1f s", phase, self.seconds[phase])


# Settings of the scripted run only (`make up` keeps Airflow's defaults): it edits no DAG file or spec
# while Airflow runs, so the dag-processor need not parse them every 30 s beside the tasks.
DEMO_RUN_SETTINGS = {"AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600"}


def run_demo(env: dict[str, str]) -> None:
    from tools.demo.summary import print_summary

    env = {**env, **DEMO_RUN_SETTINGS}
    phases = Phases()
    new = prepare(env)
    phases.done("seed + migrate")
    days = demo_dates()
    scored = [d for d in days if d.isoformat() >= TRAIN_AS_OF[0]]
    if not new:
        pause_all(env)
    queue_backfill(env, INGEST, days[0].isoformat(), days[-1].isoformat())
    queue_backfill(env, SCORE, scored[0].isoformat(), scored[-1].isoformat())
    observed = [d for d in scored if d - OUTCOME_AFTER >= scored[0]]  # outcomes of scored customers
    queue_backfill(env, EVALUATE, observed[0].isoformat(), observed[-1].isoformat())
    phases.done("queue the backfills")
    with start(env) as api:
        phases.done("start Airflow")
        unpause(api, INGEST)
        # The first training run reads only its window's days: it starts once they are in, while
        # ingest goes on with the later days; the second reads up to the last day, so it waits for all.
        first_window = training_window(TRAIN_AS_OF[0])
        wait_for_days(api, INGEST, *first_window)
        log.info("%s: the days %s..%s are ingested", INGEST, *first_window)
        unpause(api, TRAIN)
        train_runs = trigger_runs(api, TRAIN, TRAIN_AS_OF[:1])
        ingest_states = finish_backfill(api, INGEST, len(days))
        phases.done("ingest backfill (90 days)")
        train_runs += trigger_runs(api, TRAIN, TRAIN_AS_OF[1:])
        # Scoring needs a champion: it starts once the first run's gate has decided, beside the second
        # run, whose gate can only change the champion as of 2025-03-31, the last day the backfill
        # reaches (the summary checks that every day was scored by the champion of its day).
        trained = wait_for_runs(api, TRAIN, train_runs[:1], progress=Progress(TRAIN, 1))
        phases.done("training as of 2025-03-01 (what is left)")
        unpause(api, SCORE)
        score_states = finish_backfill(api, SCORE, len(scored))
        phases.done("scoring backfill (31 days; training as of 03-31 beside it)")
        # Each evaluation waits for its day's scoring; started now, none has to wait (a sensor that
        # reschedules every few seconds while its day is scored can be failed by the scheduler).
        unpause(api, EVALUATE)
        evaluate_states = finish_backfill(api, EVALUATE, len(observed))
        trained |= wait_for_runs(api, TRAIN, train_runs[1:])
        phases.done(f"evaluation backfill ({len(observed)} days of outcomes; what is left of training)")
        print_summary(
            api,
            DEMO_DAGS,
            {
                f"{INGEST} backfill runs": ingest_states,
                **{
                    f"{TRAIN} as of {day}": trained[r] for day, r in zip(TRAIN_AS_OF, train_runs, strict=True)
                },
                f"{SCORE} backfill runs": score_states,
                f"{EVALUATE} backfill runs": evaluate_states,
            },
            phases,
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
