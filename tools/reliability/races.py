"""Promotion races: in each round several processes promote their own candidate at the same moment.

Each round registers one candidate per process, all trained as of the same day and all expecting the
current champion; the processes wait for a common start instant and call `Registry.promote`.
Expected: exactly one winner and one champion per round, and a champion history in which each
change names the champion it replaced.
"""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa

log = logging.getLogger(__name__)

USE_CASE = "race"


@dataclass
class RaceFigures:
    rounds: int = 0
    racers: int = 0
    rounds_not_one_winner: int = 0
    rounds_not_one_champion: int = 0
    history_inconsistencies: int = 0
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def new_version(run_id: str, ds: dt.date):
    from tools.testkit import version_of_day

    return version_of_day(
        USE_CASE,
        run_id,
        ds,
        family="dummy",
        artifact_uri=f"file:///nowhere/{run_id}.skops",
        sha256="0" * 64,
        metrics={"roc_auc": 0.8},
        code_version="race",
    )


def _racer(url: str, version: int, expected: int | None, start_at: float, out) -> None:
    from include.registry.registry import Registry

    engine = sa.create_engine(url)
    registry = Registry(engine)
    time.sleep(max(0.0, start_at - time.time()))
    out.put((version, registry.promote(USE_CASE, version, expected).promoted))
    engine.dispose()


def run_races(url: str, rounds: int, racers: int = 4) -> RaceFigures:
    """`rounds` rounds of `racers` processes promoting at once on the PostgreSQL database at `url`."""
    from include.platform.schema import upgrade
    from include.platform.tables import champion_history, model_versions
    from include.registry.registry import Registry

    engine = sa.create_engine(url)
    upgrade(engine)
    registry = Registry(engine)
    figures = RaceFigures()
    spawn = multiprocessing.get_context("spawn")
    day = dt.date(2025, 1, 1)
    for r in range(rounds):
        day += dt.timedelta(days=1)
        champion = registry.champion(USE_CASE)
        expected = champion.version if champion else None
        versions = [registry.register(new_version(f"round{r}-{i}", day)).version for i in range(racers)]
        out = spawn.Queue()
        start_at = time.time() + 2.0  # every racer is imported and connected by then
        procs = [spawn.Process(target=_racer, args=(url, v, expected, start_at, out)) for v in versions]
        for p in procs:
            p.start()
        results = [out.get(timeout=60) for _ in procs]
        for p in procs:
            p.join()
        winners = [v for v, promoted in results if promoted]
        with engine.connect() as conn:
            champions = conn.execute(
                sa.select(sa.func.count())
                .select_from(model_versions)
                .where((model_versions.c.use_case == USE_CASE) & (model_versions.c.status == "champion"))
            ).scalar()
        figures.rounds += 1
        figures.racers += len(procs)
        if len(winners) != 1:
            figures.rounds_not_one_winner += 1
            figures.problems.append(f"round {r}: winners {winners}")
        if champions != 1 or (winners and registry.champion(USE_CASE).version != winners[0]):
            figures.rounds_not_one_champion += 1
            figures.problems.append(f"round {r}: {champions} champions")
    history = registry.champion_history(USE_CASE)
    previous = None
    for change in history:
        if change.previous_version != previous:
            figures.history_inconsistencies += 1
            figures.problems.append(f"v{change.version} names v{change.previous_version}, not v{previous}")
        previous = change.version
    with engine.connect() as conn:
        moves = conn.execute(
            sa.select(sa.func.count())
            .select_from(champion_history)
            .where(champion_history.c.use_case == USE_CASE)
        ).scalar()
    if moves != rounds or (history and history[-1].version != registry.champion(USE_CASE).version):
        figures.history_inconsistencies += 1
        figures.problems.append(f"{moves} champion moves in {rounds} rounds")
    engine.dispose()
    return figures
