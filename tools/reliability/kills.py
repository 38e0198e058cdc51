"""Kills: SIGKILLs at random moments of real ingest and scoring processes, each followed by a rerun.

An uninterrupted run of each day first gives the reference: the partition and quarantine rows, the
run record's counts and the day's predictions. Then each kill starts the task in a process of its
own, kills it after a random delay within the task's measured duration, reruns the task and
compares the day with the reference. Expected: no duplicate, no lost row, no differing partition.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd
import sqlalchemy as sa

from tools.reliability import tasks
from tools.reliability.world import World, day_predictions

log = logging.getLogger(__name__)

DAYS = ("2025-03-05", "2025-03-06", "2025-03-07")


@dataclass
class KillFigures:
    kills: int = 0
    killed_mid_run: int = 0
    finished_before_kill: int = 0
    duplicates: int = 0
    lost_rows: int = 0
    differing_partitions: int = 0
    record_disagreements: int = 0
    failed_reruns: int = 0
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def day_state(world: World, ds: str) -> dict[str, Any]:
    """What a user checks of a day: partition and quarantine rows, the record, the predictions."""
    from include.io.lake import QUARANTINE_ZONE, RAW_ZONE, partition_key
    from include.io.stores import LocalStore
    from include.platform.tables import ingest_runs

    lake, day = LocalStore(world.lake), dt.date.fromisoformat(ds)
    frames = {}
    for zone in (RAW_ZONE, QUARANTINE_ZONE):
        key = partition_key(zone, tasks.USE_CASE, day)
        frames[zone] = pd.read_parquet(lake.root / key) if lake.list_keys(key) else None
    engine = world.platform()
    with engine.connect() as conn:
        record = conn.execute(
            sa.select(
                ingest_runs.c.rows_read, ingest_runs.c.rows_quarantined, ingest_runs.c.rows_written
            ).where(ingest_runs.c.ds == day)
        ).first()
        scored = day_predictions(conn, tasks.USE_CASE, day)
    engine.dispose()
    return {"frames": frames, "record": None if record is None else tuple(record), "predictions": scored}


def compare(reference: dict[str, Any], now: dict[str, Any], where: str, figures: KillFigures) -> None:
    """Count how the day differs from its reference."""
    ref_p, now_p = reference["predictions"], now["predictions"]
    dup = int(now_p["entity_id"].duplicated().sum())
    lost = len(set(ref_p["entity_id"]) - set(now_p["entity_id"]))
    figures.duplicates += dup
    figures.lost_rows += lost
    for zone, frame in reference["frames"].items():
        other = now["frames"][zone]
        same = (frame is None and other is None) or (
            frame is not None and other is not None and frame.equals(other)
        )
        if not same:
            figures.differing_partitions += 1
            figures.problems.append(f"{where}: {zone} partition differs")
    merged = ref_p.merge(now_p, on="entity_id", suffixes=("", "_now"))
    if not (merged["score"] == merged["score_now"]).all() or len(now_p) != len(ref_p):
        figures.differing_partitions += 1
        figures.problems.append(f"{where}: predictions differ")
    if now["record"] != reference["record"]:
        figures.record_disagreements += 1
        figures.problems.append(f"{where}: record {now['record']} != {reference['record']}")
    if dup or lost:
        figures.problems.append(f"{where}: {dup} duplicates, {lost} lost")


def run_process(world: World, task: str, ds: str, kill_after: float | None) -> tuple[bool, float]:
    """Run one task body in its own process; SIGKILL it after `kill_after` s. (killed mid-run, s)."""
    env = {**os.environ, **world.env}
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.reliability.tasks", task, ds],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    if kill_after is None:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"{task} {ds} failed: {err.decode()[-2000:]}")
        return False, time.perf_counter() - started
    try:
        proc.wait(timeout=kill_after)
        return False, time.perf_counter() - started
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return True, time.perf_counter() - started
    finally:
        if proc.stderr:
            proc.stderr.close()


def run_kills(world: World, n: int, seed: int = 12) -> KillFigures:
    """`n` kills spread over ingest and scoring of `DAYS`, each followed by a rerun (in process)."""
    rng = random.Random(seed)
    durations: dict[str, float] = {}
    for task in ("ingest", "score"):
        for ds in DAYS:
            _, durations[f"{task} {ds}"] = run_process(world, task, ds, None)
    reference = {ds: day_state(world, ds) for ds in DAYS}
    figures = KillFigures()
    for i in range(n):
        task, ds = rng.choice(("ingest", "score")), rng.choice(DAYS)
        delay = rng.uniform(0.0, durations[f"{task} {ds}"])
        killed, _ = run_process(world, task, ds, delay)
        figures.kills += 1
        figures.killed_mid_run += killed
        figures.finished_before_kill += not killed
        try:
            # The rerun an operator (or Airflow's retry) makes: the task, then scoring downstream.
            if task == "ingest":
                tasks.ingest(ds, f"rerun{i}")
            tasks.score(ds, f"rerun{i}")
        except Exception as exc:
            figures.failed_reruns += 1
            figures.problems.append(f"kill {i} ({task} {ds}): rerun failed: {exc}")
            continue
        compare(reference[ds], day_state(world, ds), f"kill {i} ({task} {ds} at {delay:.2f}s)", figures)
        log.info("kill %d: %s %s after %.2fs (%s)", i, task, ds, delay, "mid-run" if killed else "done")
    return figures
