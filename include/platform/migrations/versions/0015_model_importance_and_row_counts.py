"""model_versions.importance, the permutation importance per feature on the holdout, and
model_versions.row_counts, the rows of the training part and of the holdout

Stored at training, where the holdout is, so that the CLI and the UI page show them without
recomputing.

Revision ID: 0015
Revises: 0014
Created: 2026-12-02 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "importance",
                sa.JSON(),
                nullable=True,
                comment="permutation importance per feature on the holdout",
            )
        )
        batch_op.add_column(
            sa.Column(
                "row_counts",
                sa.JSON(),
                nullable=True,
                comment="rows of the training part and of the holdout",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.drop_column("row_counts")
        batch_op.drop_column("importance")
