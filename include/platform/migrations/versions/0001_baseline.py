"""baseline: the platform tables as create_all made them before migrations

Revision ID: 0001
Revises: (none)
Created: 2026-12-01 09:56:58.706425
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "champion_history",
        sa.Column("use_case", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("ds", sa.Date(), nullable=False, comment="champion for scoring days from this one on"),
        sa.Column("previous_version", sa.Integer(), nullable=True),
        sa.Column("promoted_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("use_case", "version"),
    )
    op.create_table(
        "drift_measures",
        sa.Column("use_case", sa.String(length=64), nullable=False),
        sa.Column("ds", sa.Date(), nullable=False),
        sa.Column("feature", sa.String(length=128), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=False, comment="whose training reference"),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("psi", sa.Float(), nullable=False),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column("buckets", sa.JSON(), nullable=False),
        sa.Column("reference_shares", sa.JSON(), nullable=False),
        sa.Column("actual_shares", sa.JSON(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("use_case", "ds", "feature"),
    )
    op.create_table(
        "gate_decisions",
        sa.Column("use_case", sa.String(length=64), nullable=False),
        sa.Column("candidate_version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("champion_version", sa.Integer(), nullable=True),
        sa.Column("ds", sa.Date(), nullable=False),
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("candidate_metrics", sa.JSON(), nullable=False),
        sa.Column("champion_metrics", sa.JSON(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("use_case", "candidate_version"),
    )
    op.create_table(
        "ingest_runs",
        sa.Column("use_case", sa.String(length=64), nullable=False),
        sa.Column("ds", sa.Date(), nullable=False),
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.Column("rows_read", sa.JSON(), nullable=False, comment="per source"),
        sa.Column("rows_quarantined", sa.JSON(), nullable=False, comment="per source"),
        sa.Column("rows_joined", sa.Integer(), nullable=False),
        sa.Column("rows_written", sa.Integer(), nullable=False),
        sa.Column("partition_uri", sa.Text(), nullable=False),
        sa.Column("quarantine_uri", sa.Text(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("use_case", "ds"),
    )
    op.create_table(
        "model_aliases",
        sa.Column("use_case", sa.String(length=64), nullable=False),
        sa.Column("alias", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("ds", sa.Date(), nullable=False, comment="the aliased version's training day"),
        sa.Column("moved_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("use_case", "alias"),
    )
    op.create_table(
        "model_versions",
        sa.Column("use_case", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.Column("ds", sa.Date(), nullable=False, comment="the day the model was trained as of"),
        sa.Column("window_start", sa.Date(), nullable=False),
        sa.Column("window_end", sa.Date(), nullable=False),
        sa.Column("holdout_start", sa.Date(), nullable=False),
        sa.Column("holdout_end", sa.Date(), nullable=False),
        sa.Column("family", sa.String(length=64), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False, comment="on the holdout"),
        sa.Column("cv_metrics", sa.JSON(), nullable=False),
        sa.Column("trials", sa.JSON(), nullable=False),
        sa.Column(
            "reference", sa.JSON(), nullable=True, comment="feature profile of the training rows, for drift"
        ),
        sa.Column("library_versions", sa.JSON(), nullable=False),
        sa.Column("code_version", sa.String(length=80), nullable=False),
        sa.Column("artifact_uri", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint(
            "status IN ('candidate', 'champion', 'retired', 'rejected')", name="ck_model_versions_status"
        ),
        sa.PrimaryKeyConstraint("use_case", "version"),
        sa.UniqueConstraint("use_case", "run_id", name="uq_model_versions_run"),
    )
    op.create_table(
        "predictions",
        sa.Column("use_case", sa.String(length=64), nullable=False),
        sa.Column("ds", sa.Date(), nullable=False),
        sa.Column("entity_id", sa.String(length=128), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=False),
        sa.Column(
            "score", sa.Float(precision=53), nullable=False, comment="probability of the positive label"
        ),
        sa.Column("predicted_label", sa.SmallInteger(), nullable=False, comment="1 when score >= threshold"),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("use_case", "ds", "entity_id"),
    )
    op.create_table(
        "retrain_requests",
        sa.Column("use_case", sa.String(length=64), nullable=False),
        sa.Column("ds", sa.Date(), nullable=False, comment="the drifting day"),
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.Column("features", sa.JSON(), nullable=False, comment="features over the alert level, with PSI"),
        sa.Column("requested_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("use_case", "ds"),
    )
    op.create_table(
        "score_runs",
        sa.Column("use_case", sa.String(length=64), nullable=False),
        sa.Column("ds", sa.Date(), nullable=False),
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=False),
        sa.Column("model_sha256", sa.String(length=64), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("rows_in", sa.Integer(), nullable=False),
        sa.Column("rows_scored", sa.Integer(), nullable=False),
        sa.Column("rows_rejected", sa.Integer(), nullable=False),
        sa.Column("rejected_reasons", sa.JSON(), nullable=False, comment="rows per reason"),
        sa.Column("score_mean", sa.Float(), nullable=True),
        sa.Column("positive_rate", sa.Float(), nullable=True),
        sa.Column("score_histogram", sa.JSON(), nullable=False, comment="rows per tenth of [0, 1]"),
        sa.Column("drift_level", sa.String(length=8), nullable=False),
        sa.Column("predictions_uri", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("use_case", "ds"),
    )


def downgrade() -> None:
    op.drop_table("score_runs")
    op.drop_table("retrain_requests")
    op.drop_table("predictions")
    op.drop_table("model_versions")
    op.drop_table("model_aliases")
    op.drop_table("ingest_runs")
    op.drop_table("gate_decisions")
    op.drop_table("drift_measures")
    op.drop_table("champion_history")
