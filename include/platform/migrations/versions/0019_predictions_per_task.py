"""predictions per task: predicted_label may be null (regression), predicted_class and
class_probabilities (multiclass) added, score and predicted_label described per task

Every existing row is a binary prediction and keeps its values; the new columns are null for it.

Revision ID: 0019
Revises: 0018
Created: 2026-12-07 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

SCORE = (
    "binary: probability of the positive label; multiclass: of the predicted class; "
    "regression: the predicted value"
)
LABEL = "binary: 1 when score >= threshold; multiclass: the predicted class's index; regression: null"


def upgrade() -> None:
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.alter_column(
            "score",
            existing_type=sa.Float(precision=53),
            existing_nullable=False,
            comment=SCORE,
            existing_comment="probability of the positive label",
        )
        batch_op.alter_column(
            "predicted_label",
            existing_type=sa.SmallInteger(),
            nullable=True,
            comment=LABEL,
            existing_comment="1 when score >= threshold",
        )
        batch_op.add_column(
            sa.Column(
                "predicted_class",
                sa.String(length=200),
                nullable=True,
                comment="multiclass: the predicted class, as text",
            )
        )
        batch_op.add_column(
            sa.Column(
                "class_probabilities",
                sa.Text(),
                nullable=True,
                comment="multiclass: every class's probability, a JSON array in the version's class order",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.drop_column("class_probabilities")
        batch_op.drop_column("predicted_class")
        batch_op.alter_column(
            "predicted_label",
            existing_type=sa.SmallInteger(),
            nullable=False,
            comment="1 when score >= threshold",
            existing_comment=LABEL,
        )
        batch_op.alter_column(
            "score",
            existing_type=sa.Float(precision=53),
            existing_nullable=False,
            comment="probability of the positive label",
            existing_comment=SCORE,
        )
