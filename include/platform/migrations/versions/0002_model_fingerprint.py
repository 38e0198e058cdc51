"""model_versions.fingerprint and training_runs: a retrain on unchanged data reuses its version

Revision ID: 0002
Revises: 0001
Created: 2026-12-01 09:58:55.794014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "training_runs",
        sa.Column("use_case", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.Column("ds", sa.Date(), nullable=False, comment="the day trained as of"),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("outcome IN ('registered', 'unchanged')", name="ck_training_runs_outcome"),
        sa.PrimaryKeyConstraint("use_case", "run_id"),
    )
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "fingerprint",
                sa.String(length=64),
                nullable=True,
                comment="window content, code, libraries and search: equal fingerprints, equal models",
            )
        )
        batch_op.create_index("ix_model_versions_fingerprint", ["use_case", "fingerprint"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.drop_index("ix_model_versions_fingerprint")
        batch_op.drop_column("fingerprint")

    op.drop_table("training_runs")
