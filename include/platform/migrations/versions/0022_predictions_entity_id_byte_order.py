"""predictions.entity_id: on PostgreSQL, compared in byte order (COLLATE "C"), the order ingest sorts a
day's partition in, so that a scoring shard's ids are a range: a partition of the day of its own
(the day's index is rebuilt; SQLite: unchanged)

Revision ID: 0022
Revises: 0021
Created: 2026-12-07 13:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def _collate(collation: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f'ALTER TABLE predictions ALTER COLUMN entity_id TYPE varchar(128) COLLATE "{collation}"')


def upgrade() -> None:
    _collate("C")


def downgrade() -> None:
    _collate("default")
