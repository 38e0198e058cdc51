"""The demo's closing summary: what ran, the row counts, where the outputs are, what to open next."""

from __future__ import annotations

import sqlalchemy as sa

from include.config import Settings
from include.io.connections import engine_for, store_for
from include.platform.tables import create_tables, ingest_runs


def ingest_totals(engine: sa.Engine, use_case: str) -> dict:
    """Partitions and row counts from the ingest run records."""
    create_tables(engine)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(ingest_runs).where(ingest_runs.c.use_case == use_case)).mappings().all()
    read: dict[str, int] = {}
    quarantined: dict[str, int] = {}
    for row in rows:
        for source, n in row["rows_read"].items():
            read[source] = read.get(source, 0) + n
        for source, n in row["rows_quarantined"].items():
            quarantined[source] = quarantined.get(source, 0) + n
    days = sorted(row["ds"] for row in rows)
    return {
        "partitions": len(rows),
        "first": days[0] if days else None,
        "last": days[-1] if days else None,
        "read": read,
        "quarantined": quarantined,
        "written": sum(row["rows_written"] for row in rows),
    }


def print_summary(facts: dict) -> None:
    settings = Settings.from_env()
    lake = store_for(settings.lake_conn_id)
    totals = ingest_totals(engine_for(settings.platform_db_conn_id), "churn")
    lake_partitions = len(lake.list_keys("raw/churn/"))
    lines = [
        "",
        "=" * 72,
        "Demo summary",
        "=" * 72,
        *(f"  {k:<42} {v}" for k, v in facts.items()),
        "",
        "Ingest (churn_ingest)",
        f"  partitions recorded / in the lake          {totals['partitions']} / {lake_partitions}"
        f"  ({totals['first']} .. {totals['last']})",
        f"  rows read per source                       {totals['read']}",
        f"  rows quarantined per source                {totals['quarantined']}",
        f"  rows written                               {totals['written']}",
        f"  partitions                                 {lake.uri('raw/churn/')}",
        f"  quarantine                                 {lake.uri('quarantine/churn/')}",
        "  run records                                table ingest_runs (connection platform_db)",
        "",
        "Registry (python -m include.cli models churn)",
        *_indented(_models_table()),
        "",
        "Gate decisions (python -m include.cli gate churn)",
        *_indented(_gate_table()),
        "",
        "Next",
        "  make up                                    Airflow's UI on the demo, http://127.0.0.1:8080",
        "  make airflow ARGS='dags test churn_ingest 2025-03-31'",
        '  make airflow ARGS="dags test churn_train 2025-03-31 -c \'{\\"estimators\\": [\\"dummy\\"]}\'"',
        "=" * 72,
    ]
    print("\n".join(lines))


def _indented(text: str) -> list[str]:
    return [f"  {line}" for line in text.splitlines()]


def _models_table() -> str:
    from include.cli import format_table, models

    rows = models("churn")
    keep = ["version", "status", "aliases", "ds", "family", "roc_auc", "accuracy", "sha256"]
    return (
        format_table([{k: r[k] for k in keep} | {"sha256": r["sha256"][:12]} for r in rows], keep)
        if rows
        else "none"
    )


def _gate_table() -> str:
    from include.cli import gate, gate_table

    rows = gate("churn")
    return gate_table(rows, "roc_auc") if rows else "none"
