"""gate_decisions: the primary metric's paired difference, its bounds and the evidence;
drift_measures.psi_noise, the PSI sampling noise reaches at the day's rows

Revision ID: 0014
Revises: 0013
Created: 2026-12-01 10:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("gate_decisions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("confidence", sa.Float(), nullable=True, comment="one-sided level of the bounds")
        )
        batch_op.add_column(
            sa.Column(
                "difference",
                sa.Float(),
                nullable=True,
                comment="primary metric, candidate minus champion (+: better)",
            )
        )
        batch_op.add_column(
            sa.Column(
                "difference_lower", sa.Float(), nullable=True, comment="its lower bound, paired bootstrap"
            )
        )
        batch_op.add_column(
            sa.Column(
                "difference_upper", sa.Float(), nullable=True, comment="its upper bound, paired bootstrap"
            )
        )
        batch_op.add_column(
            sa.Column(
                "evidence",
                sa.JSON(),
                nullable=True,
                comment="every gate metric's bounds: levels and paired differences",
            )
        )
    with op.batch_alter_table("drift_measures", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "psi_noise",
                sa.Float(),
                nullable=True,
                comment="PSI that sampling noise reaches at the day's rows",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("drift_measures", schema=None) as batch_op:
        batch_op.drop_column("psi_noise")
    with op.batch_alter_table("gate_decisions", schema=None) as batch_op:
        for column in ("evidence", "difference_upper", "difference_lower", "difference", "confidence"):
            batch_op.drop_column(column)
