"""The platform's command line, for people and scripts.

    python -m include.cli models churn [--json]    versions, status, aliases, ds, primary metric, sha256
    python -m include.cli gate churn [--json]      gate decisions: both sides' metrics and the reason
    python -m include.cli runs churn [--json]      ingest run records: rows read, quarantined, written

It reads the platform's tables through the `platform_db` connection (`PLATFORM_DB_CONN_ID`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from include.config import Settings
from include.usecases.spec import get_spec


def _engine() -> sa.Engine:
    from include.io.connections import engine_for

    return engine_for(Settings.from_env().platform_db_conn_id)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "-" if value is None else str(value)


def format_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    cells = [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def models(use_case: str) -> list[dict[str, Any]]:
    """Every registered version, oldest first."""
    from include.registry.registry import Registry

    spec = get_spec(use_case, Settings.from_env().spec_dir)
    registry = Registry(_engine())
    champion = registry.champion(use_case)
    return [
        {
            "version": v.version,
            "status": v.status,
            "aliases": "champion" if champion and champion.version == v.version else "",
            "ds": v.ds.isoformat(),
            "family": v.family,
            spec.gate.primary: v.metrics.get(spec.gate.primary),
            "accuracy": v.metrics.get("accuracy"),
            "threshold": v.threshold,
            "sha256": v.sha256,
            "reason": v.status_reason,
        }
        for v in registry.versions(use_case)
    ]


def gate(use_case: str) -> list[dict[str, Any]]:
    """Every gate decision, with the candidate's and the champion's figures side by side."""
    from include.registry.registry import Registry

    rows = []
    for d in Registry(_engine()).decisions(use_case):
        rows.append(
            {
                "candidate": d["candidate_version"],
                "champion": d["champion_version"],
                "ds": d["ds"].isoformat(),
                "passed": d["passed"],
                "candidate_metrics": d["candidate_metrics"],
                "champion_metrics": d["champion_metrics"],
                "reasons": d["reasons"],
            }
        )
    return rows


def runs(use_case: str) -> list[dict[str, Any]]:
    """The ingest run records, one per day."""
    from include.platform.tables import create_tables, ingest_runs

    engine = _engine()
    create_tables(engine)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(ingest_runs).where(ingest_runs.c.use_case == use_case).order_by(ingest_runs.c.ds)
        ).mappings()
        return [{**r, "ds": r["ds"].isoformat(), "recorded_at": str(r["recorded_at"])} for r in rows]


def gate_table(rows: list[dict[str, Any]], primary: str) -> str:
    """Gate decisions as a table: both sides' primary metric and accuracy, and the reason."""

    def side_by_side(row: dict[str, Any], metric: str) -> str:
        theirs = row["champion_metrics"] or {}
        return f"{_fmt(row['candidate_metrics'].get(metric))} / {_fmt(theirs.get(metric))}"

    flat = [
        {
            "candidate": f"v{r['candidate']}",
            "champion": f"v{r['champion']}" if r["champion"] else "none",
            "ds": r["ds"],
            "passed": r["passed"],
            f"{primary} (cand/champ)": side_by_side(r, primary),
            "accuracy (cand/champ)": side_by_side(r, "accuracy"),
            "reason": "; ".join(r["reasons"]),
        }
        for r in rows
    ]
    return format_table(flat, list(flat[0]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m include.cli", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("models", "registered versions"),
        ("gate", "gate decisions"),
        ("runs", "ingest runs"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("use_case")
        sub.add_argument("--json", action="store_true", help="JSON for scripts")
    args = parser.parse_args(argv)
    primary = get_spec(args.use_case, Settings.from_env().spec_dir).gate.primary
    readers: dict[str, Callable[[str], list[dict[str, Any]]]] = {"models": models, "gate": gate, "runs": runs}
    rows = readers[args.command](args.use_case)
    if args.json:
        print(json.dumps(rows, indent=2, default=_json_default))
    elif not rows:
        print(f"no {args.command} for {args.use_case}")
    elif args.command == "gate":
        print(gate_table(rows, primary))
    else:
        print(format_table(rows, list(rows[0])))
    return 0


def _json_default(value: Any) -> str:
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    raise TypeError(f"not JSON-able: {type(value).__name__}")


if __name__ == "__main__":
    sys.exit(main())
