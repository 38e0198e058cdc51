"""champion_history becomes the audit trail: an `entry` number per use case (a version may be
champion more than once: a rollback is a new entry), and each move's kind, actor and reason

Existing moves were all made by the gate: they keep their order (by when they were made) as entries
1, 2, ..., with kind `gate`, actor `unknown (before the audit trail)` and the reason `passed the gate`.

Revision ID: 0021
Revises: 0020
Created: 2026-12-07 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

BEFORE = "unknown (before the audit trail)"


def _columns(audit: bool) -> list[sa.Column]:
    columns = [
        sa.Column("use_case", sa.String(length=64), nullable=False),
        *(
            [
                sa.Column(
                    "entry",
                    sa.Integer(),
                    autoincrement=False,
                    nullable=False,
                    comment="1, 2, ... per use case",
                )
            ]
            if audit
            else []
        ),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("ds", sa.Date(), nullable=False, comment="champion for scoring days from this one on"),
        sa.Column("previous_version", sa.Integer(), nullable=True),
        sa.Column("promoted_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    ]
    if audit:
        columns += [
            sa.Column(
                "kind", sa.String(length=16), nullable=False, comment="gate, approval, promote or rollback"
            ),
            sa.Column(
                "actor", sa.String(length=250), nullable=False, comment="the user, or the DAG run of a gate"
            ),
            sa.Column("reason", sa.Text(), nullable=False),
        ]
    key = ("use_case", "entry") if audit else ("use_case", "version")
    return [*columns, sa.PrimaryKeyConstraint(*key, name="champion_history_pkey")]


def _rebuild(audit: bool) -> None:
    """Copy the rows into a table of the new shape, then put it in the old one's place."""
    conn = op.get_bind()
    old = sa.Table("champion_history", sa.MetaData(), autoload_with=conn)
    rows = (
        conn.execute(sa.select(old).order_by(old.c.use_case, old.c.promoted_at, old.c.version))
        .mappings()
        .all()
    )
    op.rename_table("champion_history", "champion_history_before")
    if conn.dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE champion_history_before "
            "RENAME CONSTRAINT champion_history_pkey TO champion_history_before_pkey"
        )
    new = op.create_table("champion_history", *_columns(audit))
    entries: dict[str, int] = {}
    copied = []
    for row in rows:
        keep = {k: row[k] for k in ("use_case", "version", "ds", "previous_version", "promoted_at")}
        if audit:
            entries[row["use_case"]] = entries.get(row["use_case"], 0) + 1
            keep |= {
                "entry": entries[row["use_case"]],
                "kind": "gate",
                "actor": BEFORE,
                "reason": "passed the gate",
            }
        copied.append(keep)
    if copied:
        op.bulk_insert(new, copied)
    op.drop_table("champion_history_before")


def upgrade() -> None:
    _rebuild(audit=True)


def downgrade() -> None:
    # A version champion twice keeps its first move only (the old key allows one per version).
    conn = op.get_bind()
    table = sa.Table("champion_history", sa.MetaData(), autoload_with=conn)
    seen: set[tuple[str, int]] = set()
    for row in conn.execute(sa.select(table).order_by(table.c.use_case, table.c.entry)).mappings().all():
        key = (row["use_case"], row["version"])
        if key in seen:
            conn.execute(
                table.delete().where((table.c.use_case == row["use_case"]) & (table.c.entry == row["entry"]))
            )
        seen.add(key)
    _rebuild(audit=False)
