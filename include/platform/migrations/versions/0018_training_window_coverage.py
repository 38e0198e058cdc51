"""training_runs.window_coverage: the days of the window a training run read (those whose ingest
record is committed), and those it left out, withdrawn (a partition with no record) or missing

Older runs keep NULL: what they read is not known.

Revision ID: 0018
Revises: 0017
Created: 2026-12-07 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("training_runs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "window_coverage",
                sa.JSON(),
                nullable=True,
                comment="the window's days: expected, read (ingest committed), withdrawn and missing ones",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("training_runs", schema=None) as batch_op:
        batch_op.drop_column("window_coverage")
