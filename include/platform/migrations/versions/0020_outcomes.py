"""outcomes that arrive later: the outcomes table, its ingest runs, the realised performance of
each scored day, and the reason of a retrain request (drift, or decay of the realised performance)

Existing retrain requests were all asked for by drift and get that reason.

Revision ID: 0020
Revises: 0019
Created: 2026-12-07 11:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

FEATURES = "drift: features over the alert level, with PSI; decay: the realised metric by day"


def _recorded_at() -> sa.Column:
    return sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "outcomes",
        sa.Column("use_case", sa.String(length=64), nullable=False),
        sa.Column("observed_ds", sa.Date(), nullable=False, comment="the day the outcome was observed"),
        sa.Column("entity_id", sa.String(length=128), nullable=False),
        sa.Column(
            "outcome", sa.JSON(), nullable=False, comment="the label's value, typed as the spec declares it"
        ),
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.PrimaryKeyConstraint("use_case", "observed_ds", "entity_id"),
    )
    op.create_table(
        "outcome_runs",
        sa.Column("use_case", sa.String(length=64), nullable=False),
        sa.Column("ds", sa.Date(), nullable=False, comment="the day of observation ingested"),
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.Column("rows_read", sa.Integer(), nullable=False),
        sa.Column("rows_kept", sa.Integer(), nullable=False),
        sa.Column("rows_quarantined", sa.Integer(), nullable=False),
        sa.Column("quarantine_reasons", sa.JSON(), nullable=False, comment="rows per reason"),
        _recorded_at(),
        sa.PrimaryKeyConstraint("use_case", "ds"),
    )
    op.create_table(
        "realised_performance",
        sa.Column("use_case", sa.String(length=64), nullable=False),
        sa.Column("ds", sa.Date(), nullable=False, comment="the scored day"),
        sa.Column("model_version", sa.Integer(), nullable=False, comment="the version that scored the day"),
        sa.Column("evaluated_through", sa.Date(), nullable=False, comment="outcomes observed up to this day"),
        sa.Column("rows_scored", sa.Integer(), nullable=False),
        sa.Column("rows_matched", sa.Integer(), nullable=False, comment="scored rows with an outcome"),
        sa.Column("primary_metric", sa.String(length=32), nullable=False),
        sa.Column(
            "metrics", sa.JSON(), nullable=False, comment="per metric: estimate, lower, upper (bootstrap)"
        ),
        sa.Column("expected", sa.JSON(), nullable=False, comment="the version's holdout figure per metric"),
        sa.Column(
            "decayed", sa.Boolean(), nullable=False, comment="the primary's interval misses the expectation"
        ),
        sa.Column("run_id", sa.String(length=250), nullable=False),
        _recorded_at(),
        sa.PrimaryKeyConstraint("use_case", "ds"),
    )
    with op.batch_alter_table("retrain_requests", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "reason",
                sa.String(length=16),
                nullable=False,
                server_default="drift",
                comment="drift or decay",
            )
        )
        batch_op.alter_column(
            "features",
            existing_type=sa.JSON(),
            existing_nullable=False,
            comment=FEATURES,
            existing_comment="features over the alert level, with PSI",
        )


def downgrade() -> None:
    with op.batch_alter_table("retrain_requests", schema=None) as batch_op:
        batch_op.alter_column(
            "features",
            existing_type=sa.JSON(),
            existing_nullable=False,
            comment="features over the alert level, with PSI",
            existing_comment=FEATURES,
        )
        batch_op.drop_column("reason")
    op.drop_table("realised_performance")
    op.drop_table("outcome_runs")
    op.drop_table("outcomes")
