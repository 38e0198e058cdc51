"""The platform's own tables: run records, the model registry, gate decisions, predictions and drift.

SQLite in the demo, PostgreSQL in tests and production. The definitions here are the target of the
Alembic migrations in `include/platform/migrations/` (see `include.platform.schema`): a change to a
table comes with its revision, and a test fails when the two disagree.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

ingest_runs = sa.Table(
    "ingest_runs",
    metadata,
    sa.Column("use_case", sa.String(64), primary_key=True),
    sa.Column("ds", sa.Date, primary_key=True),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("rows_read", sa.JSON, nullable=False, comment="per source"),
    sa.Column("rows_quarantined", sa.JSON, nullable=False, comment="per source"),
    sa.Column("rows_joined", sa.Integer, nullable=False),
    sa.Column("rows_written", sa.Integer, nullable=False),
    sa.Column("partition_uri", sa.Text, nullable=False),
    sa.Column("quarantine_uri", sa.Text),
    sa.Column("quarantine_reasons", sa.JSON, comment="per source: rows per reason, the most common first"),
    sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
)

model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column("use_case", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("ds", sa.Date, nullable=False, comment="the day the model was trained as of"),
    sa.Column("window_start", sa.Date, nullable=False),
    sa.Column("window_end", sa.Date, nullable=False),
    sa.Column("holdout_start", sa.Date, nullable=False),
    sa.Column("holdout_end", sa.Date, nullable=False),
    sa.Column("family", sa.String(64), nullable=False),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("metrics", sa.JSON, nullable=False, comment="on the holdout"),
    sa.Column("cv_metrics", sa.JSON, nullable=False),
    sa.Column("trials", sa.JSON, nullable=False),
    sa.Column("reference", sa.JSON, comment="feature profile of the training rows, for drift"),
    sa.Column("library_versions", sa.JSON, nullable=False),
    sa.Column("code_version", sa.String(80), nullable=False),
    sa.Column("artifact_uri", sa.Text, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("status_reason", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column(
        "fingerprint",
        sa.String(64),
        comment="window content, code, libraries and search: equal fingerprints, equal models",
    ),
    sa.Column("curves", sa.JSON, comment="holdout ROC and PR points, confusion matrix at the threshold"),
    sa.Column("importance", sa.JSON, comment="permutation importance per feature on the holdout"),
    sa.Column("row_counts", sa.JSON, comment="rows of the training part and of the holdout"),
    sa.Column("chosen_trial", sa.String(200), comment="trial_id of the trial the model was refitted from"),
    sa.UniqueConstraint("use_case", "run_id", name="uq_model_versions_run"),
    sa.Index("ix_model_versions_fingerprint", "use_case", "fingerprint"),
    sa.CheckConstraint(
        "status IN ('candidate', 'champion', 'retired', 'rejected')", name="ck_model_versions_status"
    ),
)

training_runs = sa.Table(
    "training_runs",
    metadata,
    sa.Column("use_case", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(250), primary_key=True),
    sa.Column("ds", sa.Date, nullable=False, comment="the day trained as of"),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column(
        "window_coverage",
        sa.JSON,
        comment="the window's days: expected, read (ingest committed), withdrawn and missing ones",
    ),
    sa.CheckConstraint("outcome IN ('registered', 'unchanged')", name="ck_training_runs_outcome"),
)

model_aliases = sa.Table(
    "model_aliases",
    metadata,
    sa.Column("use_case", sa.String(64), primary_key=True),
    sa.Column("alias", sa.String(32), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("ds", sa.Date, nullable=False, comment="the aliased version's training day"),
    sa.Column("moved_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
)

# Every move of the champion, in order (`entry`), never edited: the audit trail and the point-in-time
# answer (the champion of a day is the newest entry whose `ds` is not after it).
champion_history = sa.Table(
    "champion_history",
    metadata,
    sa.Column("use_case", sa.String(64), primary_key=True),
    sa.Column("entry", sa.Integer, primary_key=True, autoincrement=False, comment="1, 2, ... per use case"),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("ds", sa.Date, nullable=False, comment="champion for scoring days from this one on"),
    sa.Column("previous_version", sa.Integer),
    sa.Column("promoted_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False, comment="gate, approval, promote or rollback"),
    sa.Column("actor", sa.String(250), nullable=False, comment="the user, or the DAG run of a gate"),
    sa.Column("reason", sa.Text, nullable=False),
)

gate_decisions = sa.Table(
    "gate_decisions",
    metadata,
    sa.Column("use_case", sa.String(64), primary_key=True),
    sa.Column("candidate_version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("champion_version", sa.Integer),
    sa.Column("ds", sa.Date, nullable=False),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("passed", sa.Boolean, nullable=False),
    sa.Column("reasons", sa.JSON, nullable=False),
    sa.Column("candidate_metrics", sa.JSON, nullable=False),
    sa.Column("champion_metrics", sa.JSON),
    sa.Column("confidence", sa.Float, comment="one-sided level of the bounds"),
    sa.Column("difference", sa.Float, comment="primary metric, candidate minus champion (+: better)"),
    sa.Column("difference_lower", sa.Float, comment="its lower bound, paired bootstrap"),
    sa.Column("difference_upper", sa.Float, comment="its upper bound, paired bootstrap"),
    sa.Column("evidence", sa.JSON, comment="every gate metric's bounds: levels and paired differences"),
    sa.Column("champion_curves", sa.JSON, comment="the champion's curves on the candidate's holdout"),
    sa.Column("decided_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
)

SCORE_COMMENT = (
    "binary: probability of the positive label; multiclass: of the predicted class; "
    "regression: the predicted value"
)
PREDICTED_LABEL_COMMENT = (
    "binary: 1 when score >= threshold; multiclass: the predicted class's index; regression: null"
)
ENTITY_ID = sa.String(128).with_variant(sa.String(128, collation="C"), "postgresql")
predictions = sa.Table(
    "predictions",
    metadata,
    sa.Column("use_case", sa.String(64), primary_key=True),
    sa.Column("ds", sa.Date, primary_key=True),
    # PostgreSQL: byte order (COLLATE "C"), the order ingest sorts a day's partition in, so that a
    # scoring shard's rows (a range of its row groups) are a range of ids: its own partition of the day.
    sa.Column("entity_id", ENTITY_ID, primary_key=True),
    sa.Column("model_version", sa.Integer, nullable=False),
    sa.Column("score", sa.Float(precision=53), nullable=False, comment=SCORE_COMMENT),
    sa.Column("predicted_label", sa.SmallInteger, comment=PREDICTED_LABEL_COMMENT),
    sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("predicted_class", sa.String(200), comment="multiclass: the predicted class, as text"),
    sa.Column(
        "class_probabilities",
        sa.Text,
        comment="multiclass: every class's probability, a JSON array in the version's class order",
    ),
    # PostgreSQL: one partition per use case and day (`day_partition`), swapped in whole by
    # `include.io.bulk.replace_partition`; a DEFAULT partition takes rows written any other way.
    postgresql_partition_by="RANGE (use_case, ds)",
)

score_runs = sa.Table(
    "score_runs",
    metadata,
    sa.Column("use_case", sa.String(64), primary_key=True),
    sa.Column("ds", sa.Date, primary_key=True),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("model_version", sa.Integer, nullable=False),
    sa.Column("model_sha256", sa.String(64), nullable=False),
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("rows_in", sa.Integer, nullable=False),
    sa.Column("rows_scored", sa.Integer, nullable=False),
    sa.Column("rows_rejected", sa.Integer, nullable=False),
    sa.Column("rejected_reasons", sa.JSON, nullable=False, comment="rows per reason"),
    sa.Column("score_mean", sa.Float),
    sa.Column("positive_rate", sa.Float),
    sa.Column("score_histogram", sa.JSON, nullable=False, comment="rows per tenth of [0, 1]"),
    sa.Column("drift_level", sa.String(8), nullable=False),
    sa.Column("predictions_uri", sa.Text, nullable=False),
    sa.Column(
        "shard_costs",
        sa.JSON(none_as_null=True),  # no costs measured: SQL NULL, not JSON null
        comment="what a scoring shard cost: start-up seconds and rows/s (medians), for the next plan",
    ),
    sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
)

drift_measures = sa.Table(
    "drift_measures",
    metadata,
    sa.Column("use_case", sa.String(64), primary_key=True),
    sa.Column("ds", sa.Date, primary_key=True),
    sa.Column("feature", sa.String(128), primary_key=True),
    sa.Column("model_version", sa.Integer, nullable=False, comment="whose training reference"),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("psi", sa.Float, nullable=False),
    sa.Column("psi_noise", sa.Float, comment="PSI that sampling noise reaches at the day's rows"),
    sa.Column("level", sa.String(8), nullable=False),
    sa.Column("buckets", sa.JSON, nullable=False),
    sa.Column("reference_shares", sa.JSON, nullable=False),
    sa.Column("actual_shares", sa.JSON, nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
)

RETRAIN_FEATURES_COMMENT = "drift: features over the alert level, with PSI; decay: the realised metric by day"
retrain_requests = sa.Table(
    "retrain_requests",
    metadata,
    sa.Column("use_case", sa.String(64), primary_key=True),
    sa.Column("ds", sa.Date, primary_key=True, comment="the drifting day"),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("features", sa.JSON, nullable=False, comment=RETRAIN_FEATURES_COMMENT),
    sa.Column("requested_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column("reason", sa.String(16), nullable=False, server_default="drift", comment="drift or decay"),
)

outcomes = sa.Table(
    "outcomes",
    metadata,
    sa.Column("use_case", sa.String(64), primary_key=True),
    sa.Column("observed_ds", sa.Date, primary_key=True, comment="the day the outcome was observed"),
    sa.Column("entity_id", sa.String(128), primary_key=True),
    sa.Column("outcome", sa.JSON, nullable=False, comment="the label's value, typed as the spec declares it"),
    sa.Column("run_id", sa.String(250), nullable=False),
)

outcome_runs = sa.Table(
    "outcome_runs",
    metadata,
    sa.Column("use_case", sa.String(64), primary_key=True),
    sa.Column("ds", sa.Date, primary_key=True, comment="the day of observation ingested"),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("rows_read", sa.Integer, nullable=False),
    sa.Column("rows_kept", sa.Integer, nullable=False),
    sa.Column("rows_quarantined", sa.Integer, nullable=False),
    sa.Column("quarantine_reasons", sa.JSON, nullable=False, comment="rows per reason"),
    sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
)

realised_performance = sa.Table(
    "realised_performance",
    metadata,
    sa.Column("use_case", sa.String(64), primary_key=True),
    sa.Column("ds", sa.Date, primary_key=True, comment="the scored day"),
    sa.Column("model_version", sa.Integer, nullable=False, comment="the version that scored the day"),
    sa.Column("evaluated_through", sa.Date, nullable=False, comment="outcomes observed up to this day"),
    sa.Column("rows_scored", sa.Integer, nullable=False),
    sa.Column("rows_matched", sa.Integer, nullable=False, comment="scored rows with an outcome"),
    sa.Column("primary_metric", sa.String(32), nullable=False),
    sa.Column("metrics", sa.JSON, nullable=False, comment="per metric: estimate, lower, upper (bootstrap)"),
    sa.Column("expected", sa.JSON, nullable=False, comment="the version's holdout figure per metric"),
    sa.Column("decayed", sa.Boolean, nullable=False, comment="the primary's interval misses the expectation"),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
)
