"""score_runs.shard_costs: what a scoring shard cost (start-up seconds and rows/s), which the next
run's plan sizes its shards with

Revision ID: 0023
Revises: 0022
Created: 2026-12-07 13:31:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("score_runs") as batch:
        batch.add_column(
            sa.Column(
                "shard_costs",
                sa.JSON(),
                comment="what a scoring shard cost: start-up seconds and rows/s (medians), for the next plan",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("score_runs") as batch:
        batch.drop_column("shard_costs")
