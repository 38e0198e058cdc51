"""The platform's own tables: run records, the model registry and its gate decisions.

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

model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column("use_case", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("ds", sa.Date, nullable=False, comment="the day the model was trained as of"),
    sa.Column("window_start", sa.Date, nullable=False),
    sa.Column("window_end", sa.Date, nullable=False),
    sa.Column("holdout_start", sa.Date, nullable=False),
    sa.Column("holdout_end", sa.Date, nullable=False),
    sa.Column("family", sa.String(64), nullable=False),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("metrics", sa.JSON, nullable=False, comment="on the holdout"),
    sa.Column("cv_metrics", sa.JSON, nullable=False),
    sa.Column("trials", sa.JSON, nullable=False),
    sa.Column("reference", sa.JSON, comment="feature profile of the training rows, for drift"),
    sa.Column("library_versions", sa.JSON, nullable=False),
    sa.Column("code_version", sa.String(80), nullable=False),
    sa.Column("artifact_uri", sa.Text, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("status_reason", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.UniqueConstraint("use_case", "run_id", name="uq_model_versions_run"),
    sa.CheckConstraint(
        "status IN ('candidate', 'champion', 'retired', 'rejected')", name="ck_model_versions_status"
    ),
)

model_aliases = sa.Table(
    "model_aliases",
    metadata,
    sa.Column("use_case", sa.String(64), primary_key=True),
    sa.Column("alias", sa.String(32), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("ds", sa.Date, nullable=False, comment="the aliased version's training day"),
    sa.Column("moved_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
)

champion_history = sa.Table(
    "champion_history",
    metadata,
    sa.Column("use_case", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("ds", sa.Date, nullable=False, comment="champion for scoring days from this one on"),
    sa.Column("previous_version", sa.Integer),
    sa.Column("promoted_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
)

gate_decisions = sa.Table(
    "gate_decisions",
    metadata,
    sa.Column("use_case", sa.String(64), primary_key=True),
    sa.Column("candidate_version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("champion_version", sa.Integer),
    sa.Column("ds", sa.Date, nullable=False),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("passed", sa.Boolean, nullable=False),
    sa.Column("reasons", sa.JSON, nullable=False),
    sa.Column("candidate_metrics", sa.JSON, nullable=False),
    sa.Column("champion_metrics", sa.JSON),
    sa.Column("decided_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
)


def create_tables(engine: sa.Engine) -> None:
    """Create any missing platform table (idempotent, and safe when runs race to create them)."""
    try:
        metadata.create_all(engine, checkfirst=True)
    except (sa.exc.OperationalError, sa.exc.ProgrammingError, sa.exc.IntegrityError):
        # Another run created a table between the check and the CREATE: check again.
        metadata.create_all(engine, checkfirst=True)


def replace_rows(conn: sa.Connection, table: sa.Table, key: dict[str, Any], rows: list[dict]) -> None:
    """Replace every row matching `key` with `rows`, inside the caller's transaction."""
    conn.execute(table.delete().where(*(table.c[k] == v for k, v in key.items())))
    if rows:
        conn.execute(table.insert(), rows)
