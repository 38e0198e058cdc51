"""predictions: on PostgreSQL, partitioned by RANGE (use_case, ds), one partition per use case and
day plus a DEFAULT one, every existing row kept in its day's partition (SQLite: unchanged)

Revision ID: 0016
Revises: 0015
Created: 2026-12-08 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from include.platform.day_swap import day_partition, default_partition

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

KEPT = "predictions_unpartitioned"
COLUMNS = "use_case, ds, entity_id, model_version, score, predicted_label, scored_at"


def _columns() -> list[sa.Column]:
    return [
        sa.Column("use_case", sa.String(length=64), nullable=False),
        sa.Column("ds", sa.Date(), nullable=False),
        sa.Column("entity_id", sa.String(length=128), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=False),
        sa.Column(
            "score", sa.Float(precision=53), nullable=False, comment="probability of the positive label"
        ),
        sa.Column("predicted_label", sa.SmallInteger(), nullable=False, comment="1 when score >= threshold"),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("use_case", "ds", "entity_id", name="predictions_pkey"),
    ]


def _move_aside() -> None:
    op.execute(f"ALTER TABLE predictions RENAME TO {KEPT}")
    op.execute(f"ALTER TABLE {KEPT} RENAME CONSTRAINT predictions_pkey TO {KEPT}_pkey")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _move_aside()
    table = op.create_table("predictions", *_columns(), postgresql_partition_by="RANGE (use_case, ds)")
    op.execute(f'CREATE TABLE "{default_partition(table)}" PARTITION OF predictions DEFAULT')
    days = op.get_bind().execute(sa.text(f"SELECT DISTINCT use_case, ds FROM {KEPT}")).all()
    for use_case, ds in days:
        name, bounds = day_partition(table, {"use_case": use_case, "ds": ds})
        op.execute(f'CREATE TABLE "{name}" PARTITION OF predictions {bounds}')
    op.execute(f"INSERT INTO predictions ({COLUMNS}) SELECT {COLUMNS} FROM {KEPT}")
    op.drop_table(KEPT)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _move_aside()
    op.create_table("predictions", *_columns())
    op.execute(f"INSERT INTO predictions ({COLUMNS}) SELECT {COLUMNS} FROM {KEPT}")
    op.drop_table(KEPT)  # and its partitions
