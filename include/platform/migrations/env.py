"""Alembic's environment for the platform tables: run on the connection `include.platform.schema` hands it."""

from __future__ import annotations

from alembic import context

from include.platform.schema import VERSION_TABLE, include_name
from include.platform.tables import metadata

context.configure(
    connection=context.config.attributes["connection"],
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    # SQLite alters a table by copying it: batch mode lets one revision run on SQLite and PostgreSQL.
    render_as_batch=True,
    compare_type=True,
    include_name=include_name,
)
with context.begin_transaction():
    context.run_migrations()
