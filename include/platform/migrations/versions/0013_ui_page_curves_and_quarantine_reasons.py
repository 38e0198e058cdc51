"""model_versions.curves, gate_decisions.champion_curves, ingest_runs.quarantine_reasons: for the UI page

Curve points and quarantine reason counts are stored when they are made (training, the gate, ingest),
so the UI page reads them and never recomputes them from the lake.

Revision ID: 0013
Revises: 0002
Created: 2026-12-01 10:28:16.407737
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("gate_decisions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "champion_curves",
                sa.JSON(),
                nullable=True,
                comment="the champion's curves on the candidate's holdout",
            )
        )
    with op.batch_alter_table("ingest_runs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "quarantine_reasons",
                sa.JSON(),
                nullable=True,
                comment="per source: rows per reason, the most common first",
            )
        )
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "curves",
                sa.JSON(),
                nullable=True,
                comment="holdout ROC and PR points, confusion matrix at the threshold",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.drop_column("curves")
    with op.batch_alter_table("ingest_runs", schema=None) as batch_op:
        batch_op.drop_column("quarantine_reasons")
    with op.batch_alter_table("gate_decisions", schema=None) as batch_op:
        batch_op.drop_column("champion_curves")
