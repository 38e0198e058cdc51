"""The platform's command line, for people and scripts.

    python -m include.cli models churn [--json]    versions, status, aliases, ds, primary metric, sha256
    python -m include.cli gate churn [--json]      gate decisions: both sides' metrics and the reason
    python -m include.cli runs churn [--json]      ingest run records: rows read, quarantined, written
    python -m include.cli predictions churn [--ds D] [--json]
                                                   scored days: rows, model version, score distribution
    python -m include.cli drift churn [--ds D] [--json]
                                                   drift per day (worst feature), or per feature of a day

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
from include.partition import parse_ds
from include.platform.tables import create_tables
from include.usecases.spec import get_spec

# What the plain-text tables leave out (the JSON keeps it).
WIDE = ("score_histogram", "rejected_reasons", "buckets", "reference_shares", "actual_shares")


def _engine() -> sa.Engine:
    """The platform database, its tables created if missing (a fresh install reads as empty)."""
    from include.io.connections import engine_for

    engine = engine_for(Settings.from_env().platform_db_conn_id)
    create_tables(engine)
    return engine


def _rows_of(table: sa.Table, use_case: str, ds: dt.date | None):
    """The condition for a use case's rows, of one day when `ds` is given."""
    return (table.c.use_case == use_case) & (table.c.ds == ds if ds else sa.true())


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
    from include.platform.tables import ingest_runs

    with _engine().connect() as conn:
        rows = conn.execute(
            sa.select(ingest_runs).where(ingest_runs.c.use_case == use_case).order_by(ingest_runs.c.ds)
        ).mappings()
        return [{**r, "ds": r["ds"].isoformat(), "recorded_at": str(r["recorded_at"])} for r in rows]


def predictions(use_case: str, ds: dt.date | None = None) -> list[dict[str, Any]]:
    """Each scored day: rows in the table, model version(s), score distribution and the run record."""
    from include.platform.tables import predictions as table
    from include.platform.tables import score_runs

    stats = (
        sa.select(
            table.c.ds,
            sa.func.count().label("rows"),
            sa.func.min(table.c.model_version).label("model_version"),
            sa.func.count(sa.distinct(table.c.model_version)).label("model_versions"),
            sa.func.min(table.c.score).label("score_min"),
            sa.func.avg(table.c.score).label("score_mean"),
            sa.func.max(table.c.score).label("score_max"),
            (sa.func.sum(table.c.predicted_label) / sa.func.count().cast(sa.Float)).label("positive_rate"),
        )
        .where(_rows_of(table, use_case, ds))
        .group_by(table.c.ds)
        .order_by(table.c.ds)
    )
    with _engine().connect() as conn:
        found = conn.execute(stats).mappings().all()
        records = {
            r["ds"]: r
            for r in conn.execute(sa.select(score_runs).where(_rows_of(score_runs, use_case, ds))).mappings()
        }
    rows = []
    for r in found:
        record = records.get(r["ds"], {})
        rows.append(
            {
                **r,
                "ds": r["ds"].isoformat(),
                "score_mean": float(r["score_mean"]),
                "positive_rate": float(r["positive_rate"]),
                "rows_in": record.get("rows_in"),
                "rows_rejected": record.get("rows_rejected"),
                "drift": record.get("drift_level"),
                "score_histogram": record.get("score_histogram"),
                "rejected_reasons": record.get("rejected_reasons"),
            }
        )
    return rows


def drift(use_case: str, ds: dt.date | None = None) -> list[dict[str, Any]]:
    """Every feature's drift on day `ds`; without a day, each day's worst feature."""
    from include.platform.tables import drift_measures as table

    query = sa.select(table).where(_rows_of(table, use_case, ds)).order_by(table.c.ds, table.c.psi.desc())
    with _engine().connect() as conn:
        rows = conn.execute(query).mappings().all()
    if ds:
        keep = (
            "feature",
            "kind",
            "psi",
            "level",
            "model_version",
            "rows",
            "buckets",
            "reference_shares",
            "actual_shares",
        )
        return [{k: r[k] for k in keep} for r in rows]
    worst: dict[dt.date, dict[str, Any]] = {}
    for r in rows:
        worst.setdefault(r["ds"], r)  # rows come by day, highest PSI first
    return [
        {"ds": d.isoformat(), "worst_feature": r["feature"], "psi": r["psi"], "level": r["level"]}
        for d, r in worst.items()
    ]


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


def histogram_text(counts: list[int], width: int = 40) -> str:
    """Rows per tenth of the score range, as bars."""
    top = max(counts, default=0) or 1
    return "\n".join(
        f"{i / 10:.1f}-{(i + 1) / 10:.1f}  {'#' * round(width * n / top):<{width}}  {n}"
        for i, n in enumerate(counts)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m include.cli", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("models", "registered versions"),
        ("gate", "gate decisions"),
        ("runs", "ingest runs"),
        ("predictions", "scored days"),
        ("drift", "drift per day, or per feature with --ds"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("use_case")
        sub.add_argument("--json", action="store_true", help="JSON for scripts")
        if name in ("predictions", "drift"):
            sub.add_argument("--ds", type=parse_ds, help="one day, YYYY-MM-DD")
    args = parser.parse_args(argv)
    primary = get_spec(args.use_case, Settings.from_env().spec_dir).gate.primary
    readers: dict[str, Callable[..., list[dict[str, Any]]]] = {
        "models": models,
        "gate": gate,
        "runs": runs,
        "predictions": predictions,
        "drift": drift,
    }
    day = {"ds": args.ds} if getattr(args, "ds", None) else {}
    rows = readers[args.command](args.use_case, **day)
    if args.json:
        print(json.dumps(rows, indent=2, default=_json_default))
    elif not rows:
        print(f"no {args.command} for {args.use_case}")
    elif args.command == "gate":
        print(gate_table(rows, primary))
    else:
        print(format_table(rows, [c for c in rows[0] if c not in WIDE]))
        if args.command == "predictions" and len(rows) == 1:
            print(histogram_text(rows[0]["score_histogram"] or []))
    return 0


def _json_default(value: Any) -> str:
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    raise TypeError(f"not JSON-able: {type(value).__name__}")


if __name__ == "__main__":
    sys.exit(main())
