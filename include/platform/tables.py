"""The platform's own tables (run records; later the registry, gate decisions and predictions).

Created on first use with `create_tables`; SQLite in the demo, PostgreSQL in tests and production.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

metadata = sa.MetaData()

ingest_runs = sa.Table(
    "ingest_runs",
    metadata,
    sa.Column("use_case", sa.String(64), primary_key=True),
    sa.Column("ds", sa.Date, primary_key=True),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("rows_read", sa.JSON, nullable=False, comment="per source"),
    sa.Column("rows_quarantined", sa.JSON, nullable=False, comment="per source"),
    sa.Column("rows_joined", sa.Integer, nullable=False),
    sa.Column("rows_written", sa.Integer, nullable=False),
    sa.Column("partition_uri", sa.Text, nullable=False),
    sa.Column("quarantine_uri", sa.Text),
    sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
)


def create_tables(engine: sa.Engine) -> None:
    """Create any missing platform table (idempotent)."""
    metadata.create_all(engine, checkfirst=True)


def replace_rows(conn: sa.Connection, table: sa.Table, key: dict[str, Any], rows: list[dict]) -> None:
    """Replace every row matching `key` with `rows`, inside the caller's transaction."""
    conn.execute(table.delete().where(*(table.c[k] == v for k, v in key.items())))
    if rows:
        conn.execute(table.insert(), rows)
