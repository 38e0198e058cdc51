"""Faults: the scoring task's own database session terminated mid-transaction, and the scheduler killed
and restarted mid-backfill. Each must end as the undisturbed run did.

Session (`run_session_kill`): on PostgreSQL platform tables, with the spec's scoring batches cut to
`BATCH_ROWS` rows, a day is scored undisturbed (the reference). Then, while the suite holds the
day's prediction rows (`SELECT ... FOR UPDATE`, which also takes a ROW SHARE lock on the table),
the day is scored again: the publish loads its batches into the day's fresh table inside its one
transaction and waits at the swap's ACCESS EXCLUSIVE lock on the table; the suite finds that
session in `pg_stat_activity` (blocked by its own) and terminates it (`pg_terminate_backend`).
No code is patched. The run must fail, the day's predictions and score record must be the
reference's still, and the retry (same run id, as Airflow retries) must give the reference's rows.

Scheduler (`run_scheduler_kill`): a real Airflow (`airflow_world.running`) on PostgreSQL backfills
`churn_ingest` over `BACKFILL_DAYS` undisturbed (the reference), then backfills them again
(reprocess completed, 2 runs at a time). Once two days are done and another is running, the
scheduler's process group is SIGKILLed (its LocalExecutor's tasks die with it) and a scheduler is
started again that looks for orphaned tasks every 5 s. Every run must succeed, and every day must
have one partition file and one run record equal to the reference's.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from tools.reliability import tasks
from tools.reliability.airflow_world import Platform, days, prepare, running
from tools.reliability.world import World, day_predictions, make_world, pg_database

log = logging.getLogger(__name__)

SESSION_DAY = dt.date(2025, 3, 7)
WINDOW_DAYS = 21  # training's smallest window: holdout (14) + 7 days
TRAINING = {"estimators": ["logistic_regression"], "n_trials": 1, "window_days": WINDOW_DAYS}
# The day's ~80 predictions reach the publish's transaction in several batches.
BATCH_ROWS = 10
# What a task sees when its session is terminated under it.
TERMINATED = re.compile(r"(?i)terminat|connection|server closed|admin")
KILL_RUN = "faults-killed"  # the disturbed run, and its retry

BACKFILL_DAYS = ("2025-01-06", "2025-01-15")  # no e2e test ingests these days
# The restarted scheduler looks for orphaned tasks every 5 s instead of every 5 minutes.
RESTART = {"AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "5"}
# What a rerun of a day may change in its run record: who ran it, when, and what its shards cost.
VOLATILE = ("run_id", "recorded_at", "shard_costs")
ORPHANS_RESET = re.compile(r"Reset the following (\d+) orphaned TaskInstances")


@dataclass
class SessionKillFigures:
    rows_of_the_day: int = 0
    sessions_terminated: int = 0
    killed_while: str = ""  # the statement the terminated session was waiting in
    runs_the_kill_did_not_fail: int = 0
    rows_changed_by_the_killed_run: int = 0
    records_changed_by_the_killed_run: int = 0
    failed_retries: int = 0
    retry_differences: int = 0
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SchedulerKillFigures:
    days_backfilled: int = 0
    scheduler_kills: int = 0
    runs_done_at_the_kill: int = 0
    orphans_reset: int = 0
    kills_with_no_task_in_flight: int = 0
    runs_not_succeeded: int = 0
    days_differing_after_restart: int = 0
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rows_differing(reference: pd.DataFrame, now: pd.DataFrame) -> int:
    """Rows in one frame and not in the other, counted with their repeats (a duplicate counts)."""
    before, after = Counter(reference.itertuples(index=False)), Counter(now.itertuples(index=False))
    return sum(((before - after) + (after - before)).values())


def day_published(world: World, day: dt.date) -> tuple[pd.DataFrame, dict[str, Any] | None]:
    """The day's predictions (entity, score, model version) and its score record."""
    from include.platform.tables import score_runs

    engine = world.platform()
    with engine.connect() as conn:
        rows = day_predictions(conn, tasks.USE_CASE, day)
        record = (
            conn.execute(
                sa.select(score_runs).where(
                    (score_runs.c.use_case == tasks.USE_CASE) & (score_runs.c.ds == day)
                )
            )
            .mappings()
            .first()
        )
    engine.dispose()
    return rows, None if record is None else dict(record)


def _terminate_waiters(
    url: str, day: dt.date, held: threading.Event, body_done: threading.Event, killed: list[str]
) -> None:
    """Hold the day's prediction rows (and so a ROW SHARE lock on the table); terminate the sessions
    waiting on that, or give up when the body is done or after 120 s; then let go. Each terminated
    session's statement goes to `killed`."""
    from include.platform.tables import predictions

    engine = sa.create_engine(url)
    watcher = sa.create_engine(url, isolation_level="AUTOCOMMIT")  # a fresh pg_stat_activity each poll
    try:
        with engine.connect() as holder, watcher.connect() as poll:
            holder.execute(
                sa.select(predictions.c.entity_id)
                .where((predictions.c.use_case == tasks.USE_CASE) & (predictions.c.ds == day))
                .with_for_update()
            ).all()
            holder_pid = holder.execute(sa.text("SELECT pg_backend_pid()")).scalar()
            held.set()
            deadline = time.monotonic() + 120
            while not killed and not body_done.is_set() and time.monotonic() < deadline:
                waiting = poll.execute(
                    sa.text(
                        "SELECT pid, query FROM pg_stat_activity WHERE datname = current_database() "
                        "AND xact_start IS NOT NULL AND :holder = ANY(pg_blocking_pids(pid))"
                    ),
                    {"holder": holder_pid},
                ).all()
                for pid, query in waiting:
                    if poll.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar():
                        killed.append(query)
                time.sleep(0.05)
            holder.rollback()
    finally:
        held.set()
        engine.dispose()
        watcher.dispose()


@contextlib.contextmanager
def terminating_the_writer(url: str, day: dt.date) -> Iterator[list[str]]:
    """While the body runs, the session that waits to replace the day's predictions is terminated
    mid-transaction; yields the statements the terminated sessions were in (filled as it happens)."""
    held, body_done, killed = threading.Event(), threading.Event(), []
    thread = threading.Thread(target=_terminate_waiters, args=(url, day, held, body_done, killed))
    thread.start()
    held.wait()
    try:
        yield killed
    finally:
        body_done.set()
        thread.join()


def run_session_kill(world: World) -> SessionKillFigures:
    """SESSION_DAY scored undisturbed, then with its publish's session terminated, then retried.

    `world`: PostgreSQL platform tables, made with `batch_rows=BATCH_ROWS`, its env applied.
    """
    from include.registry.registry import Registry

    for n in range(WINDOW_DAYS):
        tasks.ingest((SESSION_DAY - dt.timedelta(days=n)).isoformat(), "faults")
    trained = tasks.train(SESSION_DAY.isoformat(), "faults", **TRAINING)
    if not trained["passed"]:
        # The scenario needs a champion, however the gate went.
        Registry(world.platform()).promote(tasks.USE_CASE, trained["candidate"]["version"], None)
    ds = SESSION_DAY.isoformat()
    tasks.score(ds, "faults-undisturbed")
    rows, record = day_published(world, SESSION_DAY)
    figures = SessionKillFigures(rows_of_the_day=len(rows))

    error: Exception | None = None
    with terminating_the_writer(world.platform_url, SESSION_DAY) as killed:
        try:
            tasks.score(ds, KILL_RUN)
        except Exception as exc:  # the kill's error, whatever the driver raises it as
            error = exc
    figures.sessions_terminated = len(killed)
    figures.killed_while = "; ".join(killed)
    if not killed or error is None or not TERMINATED.search(str(error)):
        figures.runs_the_kill_did_not_fail = 1
        figures.problems.append(
            f"session kill: {len(killed)} session(s) terminated, the run raised {error!r}"
        )
    rows_now, record_now = day_published(world, SESSION_DAY)
    figures.rows_changed_by_the_killed_run = rows_differing(rows, rows_now)
    if record_now != record:
        figures.records_changed_by_the_killed_run = 1
        figures.problems.append(f"session kill: the score record is now {record_now}")

    try:
        tasks.score(ds, KILL_RUN)
    except Exception as exc:
        figures.failed_retries = 1
        figures.problems.append(f"session kill: the retry failed: {exc}")
        return figures
    rows_now, record_now = day_published(world, SESSION_DAY)
    figures.retry_differences = rows_differing(rows, rows_now)
    if _stable(record_now) != _stable(record):
        figures.retry_differences += 1
        figures.problems.append(f"session kill: the retry's score record {record_now} != {record}")
    return figures


def _stable(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """A run record without what a rerun of its day may change."""
    return None if record is None else {k: v for k, v in record.items() if k not in VOLATILE}


def backfill_outcome(platform: Platform, first: str, last: str) -> tuple[dict[str, tuple], list[str]]:
    """Each day's run record (without what a rerun changes) and its partition, rows sorted; and what
    is wrong with the days: not one partition file, or no run record."""
    import pyarrow.parquet as pq

    records, partitions = platform.ingest_records(), platform.partitions()
    outcome, wrong = {}, []
    for ds in days(first, last):
        if partitions.get(ds) != ["part-0.parquet"] or ds not in records:
            wrong.append(f"ds={ds}: files {partitions.get(ds)}, run record {ds in records}")
            continue
        path = platform.home / "lake" / "raw" / tasks.USE_CASE / f"ds={ds}" / "part-0.parquet"
        outcome[ds] = (_stable(records[ds]), pq.read_table(path).sort_by("customerID"))
    return outcome, wrong


def _count_runs_not_succeeded(
    runs: dict[str, dict], first: str, last: str, when: str, figures: SchedulerKillFigures
) -> None:
    """Add the days of [first, last] whose run is missing or not successful to the figures."""
    states = {ds: runs.get(ds, {}).get("state") for ds in days(first, last)}
    bad = {ds: state for ds, state in states.items() if state != "success"}
    figures.runs_not_succeeded += len(bad)
    if bad:
        figures.problems.append(f"scheduler kill, {when}: runs not successful: {bad}")


def run_scheduler_kill(
    platform: Platform, first: str = BACKFILL_DAYS[0], last: str = BACKFILL_DAYS[1]
) -> SchedulerKillFigures:
    """Backfill [first, last] undisturbed, then again with the scheduler SIGKILLed mid-way and restarted.

    `platform`: a running `airflow_world.Platform` with `churn_ingest` unpaused; the days must not
    have been ingested on it before.
    """
    from tools.demo.airflow_api import create_backfill, wait_for_backfill

    figures = SchedulerKillFigures(days_backfilled=len(days(first, last)))
    _count_runs_not_succeeded(
        platform.backfill("churn_ingest", first, last), first, last, "undisturbed", figures
    )
    reference, wrong = backfill_outcome(platform, first, last)
    if wrong:
        raise RuntimeError(f"the undisturbed backfill left no reference: {wrong}")

    since = dt.datetime.now(dt.UTC).isoformat()
    backfill = create_backfill(
        platform.api, "churn_ingest", first, last, reprocess="completed", max_active_runs=2
    )
    deadline = time.monotonic() + 300
    while True:
        runs = platform.backfill_runs("churn_ingest", first, last)
        states = [r["state"] for r in runs.values() if (r.get("start_date") or "") > since]
        if states.count("success") >= 2 and "running" in states:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"the second backfill did not get going: {states}")
        time.sleep(0.5)
    log_file = platform.airflow.log_file("scheduler")
    logged_before = log_file.stat().st_size
    platform.airflow.crash("scheduler")
    figures.scheduler_kills += 1
    figures.runs_done_at_the_kill = states.count("success")
    platform.airflow.restart("scheduler", **RESTART)
    wait_for_backfill(platform.api, backfill["id"], timeout=600)
    platform.airflow.check_running()
    with log_file.open("rb") as logged:
        logged.seek(logged_before)
        figures.orphans_reset = sum(
            int(n) for n in ORPHANS_RESET.findall(logged.read().decode(errors="replace"))
        )
    if not figures.orphans_reset:
        figures.kills_with_no_task_in_flight += 1
        figures.problems.append(
            "scheduler kill: the restarted scheduler reset no task: nothing was in flight"
        )

    _count_runs_not_succeeded(
        platform.backfill_runs("churn_ingest", first, last), first, last, "restarted", figures
    )
    after, wrong = backfill_outcome(platform, first, last)
    figures.problems.extend(f"scheduler kill, restarted: {w}" for w in wrong)
    for ds, (record, table) in reference.items():
        if ds not in after or after[ds][0] != record or not after[ds][1].equals(table):
            figures.days_differing_after_restart += 1
            figures.problems.append(f"scheduler kill: ds={ds} differs from the undisturbed backfill")
    return figures


def run_faults(root: Path, admin_url: str) -> dict[str, Any]:
    """Both scenarios, each on fresh PostgreSQL databases of the server at `admin_url` (dropped after),
    working under `root`; their figures in one dict, problems joined."""
    with pg_database(admin_url, "rel_faults") as url:
        session = run_session_kill(make_world(root / "session", url, batch_rows=BATCH_ROWS).use())
    home = root / "airflow"
    with (
        pg_database(admin_url, "rel_faults_airflow") as metadata_url,
        pg_database(admin_url, "rel_faults_platform") as platform_url,
        running(home, prepare(home, metadata_url, platform_url), ("churn_ingest",)) as platform,
    ):
        scheduler = run_scheduler_kill(platform)
    return {**session.to_dict(), **scheduler.to_dict(), "problems": session.problems + scheduler.problems}
