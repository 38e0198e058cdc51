"""The registry's champion alias on PostgreSQL: compare-and-swap under races, no demotion by backfills."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from include.registry.registry import OLDER_THAN_CHAMPION, Registry
from tests.conftest import new_version

pytestmark = pytest.mark.integration


def test_versions_are_numbered_and_a_rerun_updates_in_place(pg_engine):
    registry = Registry(pg_engine)
    first = registry.register(new_version("run-1", dt.date(2025, 3, 1)))
    again = registry.register(new_version("run-1", dt.date(2025, 3, 1)))
    second = registry.register(new_version("run-2", dt.date(2025, 3, 8)))
    assert (first.version, again.version, second.version) == (1, 1, 2)
    assert [v.version for v in registry.versions("churn")] == [1, 2]


def test_racing_promotions_leave_exactly_one_champion(pg_engine):
    registry = Registry(pg_engine)
    candidates = [registry.register(new_version(f"run-{i}", dt.date(2025, 3, 1))).version for i in range(8)]
    barrier = threading.Barrier(len(candidates))
    outcomes = {}

    def promote(version: int) -> None:
        barrier.wait()
        outcomes[version] = Registry(pg_engine).promote("churn", version, expected=None)

    threads = [threading.Thread(target=promote, args=(v,)) for v in candidates]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [v for v, outcome in outcomes.items() if outcome.promoted]
    assert len(winners) == 1
    assert registry.champion("churn").version == winners[0]
    assert [v.version for v in registry.versions("churn") if v.status == "champion"] == winners


def test_racing_replacements_of_the_same_champion_promote_once(pg_engine):
    registry = Registry(pg_engine)
    base = registry.register(new_version("base", dt.date(2025, 3, 1))).version
    assert registry.promote("churn", base, expected=None).promoted
    rivals = [registry.register(new_version(f"rival-{i}", dt.date(2025, 3, 8))).version for i in range(6)]
    barrier = threading.Barrier(len(rivals))
    results = []

    def promote(version: int) -> None:
        barrier.wait()
        results.append(Registry(pg_engine).promote("churn", version, expected=base).promoted)

    threads = [threading.Thread(target=promote, args=(v,)) for v in rivals]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 1
    assert registry.get("churn", base).status == "retired"


def test_a_backfilled_older_model_never_demotes_a_newer_champion(pg_engine):
    registry = Registry(pg_engine)
    newer = registry.register(new_version("nightly", dt.date(2025, 3, 31))).version
    registry.promote("churn", newer, expected=None)
    older = registry.register(new_version("backfill", dt.date(2025, 2, 1))).version
    outcome = registry.promote("churn", older, expected=newer)
    assert not outcome.promoted
    assert outcome.reason.startswith(OLDER_THAN_CHAMPION)
    assert registry.champion("churn").version == newer


def test_champion_as_of_a_day_is_point_in_time(pg_engine):
    registry = Registry(pg_engine)
    march = registry.register(new_version("march", dt.date(2025, 3, 1))).version
    registry.promote("churn", march, expected=None)
    end = registry.register(new_version("end", dt.date(2025, 3, 31))).version
    registry.promote("churn", end, expected=march)
    assert registry.champion_as_of("churn", dt.date(2025, 2, 28)) is None
    assert registry.champion_as_of("churn", dt.date(2025, 3, 15)).version == march
    assert registry.champion_as_of("churn", dt.date(2025, 3, 31)).version == end
