"""Backfill under a newer champion: older days trained after a newer champion never demote it.

v1 is trained as of the first day and promoted, v2 as of the last day and promoted; then every day
in between is trained (a training backfill): each candidate goes through the gate and, as a stale
gate decision would, also straight to `Registry.promote`. Then the days are scored (a scoring
backfill): each must use its point-in-time champion (v1 before v2's day, v2 from it).

Two more ways a backfill goes wrong (issue 23): a day whose rerun failed (its billing file broken)
keeps its old partition in the lake but loses its ingest record, and training must not read it; and
a backfill whose `--dag-run-conf` names a `ds` must not process that one day once per run.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from tools.reliability import tasks

PARAMS = {"estimators": ["logistic_regression"], "n_trials": 1, "window_days": 21}


@dataclass
class BackfillFigures:
    days_trained: int = 0
    promoted_by_gate: int = 0
    demotions: int = 0
    days_scored: int = 0
    days_scored_by_other_than_point_in_time_champion: int = 0
    stale_days_withdrawn: int = 0
    stale_days_read_by_training: int = 0
    conf_runs: int = 0
    conf_runs_on_another_day: int = 0
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_backfill(world, first: dt.date, days: int) -> BackfillFigures:
    """Champions as of `first` and `first + days + 1`; the `days` days between backfilled."""
    from include.registry.registry import Registry

    registry = Registry(world.platform())
    last = first + dt.timedelta(days=days + 1)
    champions = []
    for ds in (first, last):
        result = tasks.train(ds.isoformat(), "champion", **PARAMS)
        version = result["candidate"]["version"]
        if not (result["promotion"] or {}).get("promoted"):
            # The scenario needs the newer champion, however its gate went: promote it directly.
            current = registry.champion(tasks.USE_CASE)
            moved = registry.promote(tasks.USE_CASE, version, current.version if current else None)
            if not moved.promoted:
                raise RuntimeError(f"the champion as of {ds} could not be promoted: {moved.reason}")
        champions.append(version)
    newest = registry.champion(tasks.USE_CASE)
    figures = BackfillFigures()
    for n in range(1, days + 1):
        ds = first + dt.timedelta(days=n)
        result = tasks.train(ds.isoformat(), "backfill", **PARAMS)
        figures.days_trained += 1
        figures.promoted_by_gate += bool(result["passed"])
        forced = registry.promote(tasks.USE_CASE, result["candidate"]["version"], newest.version)
        champion = registry.champion(tasks.USE_CASE)
        if forced.promoted or champion.version != newest.version:
            figures.demotions += 1
            figures.problems.append(f"ds={ds}: champion is now v{champion.version} ({forced.reason})")
    for n in range(days + 2):
        ds = first + dt.timedelta(days=n)
        scored = tasks.score(ds.isoformat(), "backfill")
        figures.days_scored += 1
        # The first champion scores the days before the second's, the second from its day on.
        want = champions[1] if ds >= last else champions[0]
        if scored["model_version"] != want:
            figures.days_scored_by_other_than_point_in_time_champion += 1
            figures.problems.append(f"ds={ds}: scored by v{scored['model_version']}, expected v{want}")
    stale_day(world, first + dt.timedelta(days=days // 2), last, figures)
    backfill_conf(first, days, figures)
    return figures


def stale_day(world, stale: dt.date, as_of: dt.date, figures: BackfillFigures) -> None:
    """Rerun `stale`'s ingest with its billing file broken (it fails, its record withdrawn, its old
    partition left), then train as of `as_of`: the run must not read that day."""
    from include.io.stores import LocalStore
    from include.registry.registry import Registry

    bucket = LocalStore(world.bucket)
    [billing] = [k for k in bucket.list_keys(f"billing/ds={stale}/")]
    good = bucket.read_bytes(billing)
    bucket.put_bytes(billing, b"customerID,PaymentMethod\nnot,a billing file\n")
    try:
        tasks.ingest(stale.isoformat(), "stale")
    except ValueError:
        figures.stale_days_withdrawn += 1
    finally:
        bucket.put_bytes(billing, good)
    result = tasks.train(as_of.isoformat(), "stale", **PARAMS)
    [run] = [
        r for r in Registry(world.platform()).training_runs(tasks.USE_CASE) if r.run_id.startswith("stale-")
    ]
    read = set((run.window_coverage or {}).get("read", []))
    if stale.isoformat() in read:
        figures.stale_days_read_by_training += 1
        figures.problems.append(
            f"training as of {as_of} read {stale}, whose rerun failed (v{result['candidate']['version']})"
        )


def backfill_conf(first: dt.date, days: int, figures: BackfillFigures) -> None:
    """Each run of a backfill over `days` days from `first`, its conf naming the last day: every run
    must be refused, none may process the conf's day."""
    from types import SimpleNamespace

    from airflow.utils.types import DagRunType

    from include.dag_context import partition_from_context
    from include.partition import PartitionError

    named = first + dt.timedelta(days=days - 1)
    for n in range(days - 1):
        day = first + dt.timedelta(days=n)
        logical = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        run = SimpleNamespace(run_after=logical, run_type=DagRunType.BACKFILL_JOB)
        figures.conf_runs += 1
        try:
            found = partition_from_context(
                {"params": {"ds": named.isoformat()}, "logical_date": logical, "dag_run": run}
            )
        except PartitionError:
            continue
        figures.conf_runs_on_another_day += found.ds != day
        figures.problems.append(f"backfill run of {day} with conf ds {named} processed {found.ds}")
