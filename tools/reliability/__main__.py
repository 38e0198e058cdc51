"""`make reliability`: the reliability suite, a table of its figures and `.bench/reliability.json`.

    python -m tools.reliability [--kills 100] [--races 50] [--backfill-days 30] [--only kills,races]
                                [--fuzz-serving 3000] [--fuzz-ui 2000]

Sections: kills, races, backfill, corpus, secrets, faults, fuzz (see each module). Every "expected 0" figure
must be 0: the command exits 1 otherwise.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

SECTIONS = ("kills", "races", "backfill", "corpus", "secrets", "faults", "fuzz")
# Per section: the figures that must be 0.
EXPECTED_ZERO = {
    "kills": ("duplicates", "lost_rows", "differing_partitions", "record_disagreements", "failed_reruns"),
    "races": ("rounds_not_one_winner", "rounds_not_one_champion", "history_inconsistencies"),
    "backfill": (
        "demotions",
        "days_scored_by_other_than_point_in_time_champion",
        "promoted_by_gate",
        "stale_days_read_by_training",
        "conf_runs_on_another_day",
    ),
    "corpus": ("unexpected", "known_findings_now_fixed"),
    "secrets": ("occurrences",),
    "faults": (
        "runs_the_kill_did_not_fail",
        "rows_changed_by_the_killed_run",
        "records_changed_by_the_killed_run",
        "failed_retries",
        "retry_differences",
        "kills_with_no_task_in_flight",
        "runs_not_succeeded",
        "days_differing_after_restart",
    ),
    "fuzz": ("server_errors", "unexpected_status", "unnamed_refusals", "path_leaks"),
}
# Figures shown in the table although they are not numbers: the fuzz's status counts per API.
SHOWN_MAPPINGS = ("statuses",)
ADMIN_URL = os.environ.get("PLATFORM_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
LAST_DAY = dt.date(2025, 3, 7)
WINDOW_DAYS = 21  # the training window the suite trains with (tools/reliability/backfill.PARAMS)


def _world(root: Path, first: dt.date, platform_url: str | None = None):
    """A seeded world with its env applied to this process, and the days the suite uses ingested."""
    from tools.reliability import tasks
    from tools.reliability.world import make_world

    world = make_world(root, platform_url).use()
    day = first
    while day <= LAST_DAY:
        tasks.ingest(day.isoformat(), "setup")
        day += dt.timedelta(days=1)
    return world


def run(
    sections: list[str],
    kills: int,
    races: int,
    backfill_days: int,
    out: Path,
    fuzz: tuple[int, int] = (3000, 2000),
) -> dict:
    from tools.reliability import tasks
    from tools.reliability.world import pg_database

    figures: dict[str, dict] = {}
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="reliability-") as tmp:
        for section in sections:
            started = time.perf_counter()
            root = Path(tmp) / section
            if section == "kills":
                from tools.reliability.kills import run_kills

                world = _world(root, dt.date(2025, 2, 12))
                tasks.train(
                    "2025-03-04", "kills", estimators=["logistic_regression"], n_trials=1, window_days=21
                )
                figures[section] = run_kills(world, kills).to_dict()
            elif section == "races":
                from tools.reliability.races import run_races

                with pg_database(ADMIN_URL, "rel_races") as url:
                    figures[section] = run_races(url, races).to_dict()
            elif section == "backfill":
                from tools.reliability.backfill import run_backfill

                first = LAST_DAY - dt.timedelta(days=backfill_days + 1)
                world = _world(root, first - dt.timedelta(days=WINDOW_DAYS - 1))
                figures[section] = run_backfill(world, first, backfill_days).to_dict()
            elif section == "corpus":
                from tools.reliability.corpus import run_corpus

                figures[section] = run_corpus(_world(root, LAST_DAY - dt.timedelta(days=2))).to_dict()
            elif section == "secrets":
                from tools.reliability.secrets import run_secrets

                world = _world(root, LAST_DAY - dt.timedelta(days=2))
                with pg_database(ADMIN_URL, "rel_secrets") as url:
                    figures[section] = run_secrets(world, url).to_dict()
            elif section == "faults":
                from tools.reliability.faults import run_faults

                figures[section] = run_faults(root, ADMIN_URL)
            elif section == "fuzz":
                from tools.reliability.fuzz import run_section

                figures[section] = run_section(root, *fuzz)
            seconds[section] = round(time.perf_counter() - started, 1)
    report = {
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "counts": {
            "kills": kills,
            "races": races,
            "backfill_days": backfill_days,
            "fuzz_serving": fuzz[0],
            "fuzz_ui": fuzz[1],
        },
        "seconds": seconds,
        "sections": figures,
        "expected_zero": {s: {k: figures[s][k] for k in EXPECTED_ZERO[s]} for s in figures},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str))
    return report


def table(report: dict) -> str:
    """The figures as a table: one row per section, what it did, and its expected-0 columns."""
    lines = ["| section | did | expected 0 | seconds |", "|---|---|---|---|"]
    for section, values in report["sections"].items():
        zeros = report["expected_zero"][section]
        did = ", ".join(
            f"{k} {_shown(v) if k in SHOWN_MAPPINGS else v}"
            for k, v in values.items()
            if k not in zeros and (isinstance(v, int | bool) or k in SHOWN_MAPPINGS)
        )
        zero = ", ".join(f"{k} {v}" for k, v in zeros.items())
        lines.append(f"| {section} | {did} | {zero} | {report['seconds'][section]} |")
    return "\n".join(lines)


def _shown(mapping: dict) -> str:
    """`{"serving": {"200": 5, "422": 7}}` as `serving: 200 x5, 422 x7`."""
    return "; ".join(
        f"{name}: " + ", ".join(f"{k} x{n}" for k, n in sorted(counts.items()))
        for name, counts in mapping.items()
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.reliability", description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--races", type=int, default=50)
    parser.add_argument("--backfill-days", type=int, default=30)
    parser.add_argument("--fuzz-serving", type=int, default=3000, help="requests to the scoring service")
    parser.add_argument("--fuzz-ui", type=int, default=2000, help="requests to the UI's API and pages")
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma-separated, of {', '.join(SECTIONS)}"
    )
    parser.add_argument("--out", type=Path, default=Path(".bench/reliability.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sections = [s for s in args.only.split(",") if s]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"--only: unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}")
    report = run(
        sections, args.kills, args.races, args.backfill_days, args.out, (args.fuzz_serving, args.fuzz_ui)
    )
    sys.stdout.write(table(report) + f"\n\nwritten to {args.out}\n")
    bad = {s: {k: v for k, v in z.items() if v} for s, z in report["expected_zero"].items()}
    bad = {s: z for s, z in bad.items() if z}
    for section, values in bad.items():
        problems = report["sections"][section].get("problems") or report["sections"][section].get(
            "where_found"
        )
        sys.stdout.write(f"\n{section}: not 0: {values}; {problems}\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
