"""model_versions.chosen_trial, the trial_id of the trial a version's model was refitted from

Recorded at registration so that every reader shows the same chosen trial. Existing versions are
filled from what they stored: the trial with the version's own family and parameters (the refit
copies both), the best cross-validated mean of the primary metric among several such trials, ties
to the smallest trial_id; none (NULL) when no stored trial matches (a version registered without a
search, or trials stored in a shape this code never wrote).

Revision ID: 0017
Revises: 0016
Created: 2026-12-07 07:00:00
"""

from __future__ import annotations

import math
from typing import Any

import sqlalchemy as sa
from alembic import op

from include.usecases.spec import direction

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

COMMENT = "trial_id of the trial the model was refitted from"


def chosen_trial(family: str, params: dict[str, Any], trials: list[dict[str, Any]]) -> str | None:
    """The stored trial a version was refitted from (see the module docstring); None if none matches."""
    same = [
        t
        for t in (trials if isinstance(trials, list) else [])
        if isinstance(t, dict)
        and (t.get("trial", {}).get("family"), t.get("trial", {}).get("params")) == (family, params)
        and isinstance(t.get("primary_mean"), int | float)
        and math.isfinite(t["primary_mean"])
    ]
    if not same:
        return None
    best = min(same, key=lambda t: (-direction(t["primary"]) * t["primary_mean"], t["trial"]["trial_id"]))
    return best["trial"]["trial_id"]


def upgrade() -> None:
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("chosen_trial", sa.String(length=200), nullable=True, comment=COMMENT))
    versions = sa.table(
        "model_versions",
        sa.column("use_case", sa.String),
        sa.column("version", sa.Integer),
        sa.column("family", sa.String),
        sa.column("params", sa.JSON),
        sa.column("trials", sa.JSON),
        sa.column("chosen_trial", sa.String),
    )
    conn = op.get_bind()
    for row in conn.execute(sa.select(versions)).mappings().all():
        chosen = chosen_trial(row["family"], row["params"], row["trials"])
        if chosen is not None:
            conn.execute(
                versions.update()
                .where(versions.c.use_case == row["use_case"], versions.c.version == row["version"])
                .values(chosen_trial=chosen)
            )


def downgrade() -> None:
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.drop_column("chosen_trial")
