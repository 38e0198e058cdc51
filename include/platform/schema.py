"""The platform tables' schema version: Alembic migrations, applied by one command, checked by every task.

    python -m include.cli db upgrade      bring the platform database to the newest revision
    python -m include.cli db current      the revision it is at, and the newest one

`make demo`, `make up` and the compose stack's init service run the upgrade; a task that finds the
schema behind fails at once, naming the command (`check_current`). Two upgrades at once take turns on
a lock (PostgreSQL advisory lock; a lock file beside a SQLite database). A database made by
`create_all` before migrations existed holds exactly the baseline revision: it is stamped, then
upgraded, keeping every row.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

log = logging.getLogger(__name__)
# Alembic says which dialect it found on every check a task makes; `upgrade` logs what it migrated.
logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Not Alembic's default name: the platform's tables may share a database with Airflow's own.
VERSION_TABLE = "platform_schema_version"
BASELINE = "0001"
UPGRADE_COMMAND = "python -m include.cli db upgrade"


class SchemaBehindError(RuntimeError):
    """The platform database is not at the revision this code needs."""


def include_name(name: str | None, type_: str, parent_names: dict) -> bool:
    """Alembic's filter: a table's partitions (PostgreSQL) are data, not schema, and not compared."""
    from include.platform.day_swap import is_partition

    return not (type_ == "table" and name is not None and is_partition(name))


def _config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    """The newest revision the code knows."""
    return ScriptDirectory.from_config(_config()).get_current_head()


def current(engine: sa.Engine) -> str | None:
    """The revision the database is at (None: never migrated)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


@contextlib.contextmanager
def _migration_lock(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection that holds the database's migration lock until the block ends."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_lock(sa.func.hashtext(VERSION_TABLE))))
            conn.commit()
            try:
                yield conn
            finally:
                conn.rollback()
                conn.execute(sa.select(sa.func.pg_advisory_unlock(sa.func.hashtext(VERSION_TABLE))))
                conn.commit()
        elif engine.url.database and engine.url.database != ":memory:":
            with open(f"{engine.url.database}.migrate-lock", "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                yield conn
        else:
            yield conn


def upgrade(engine: sa.Engine, revision: str = "head") -> tuple[str | None, str]:
    """Migrate the platform database to `revision`; the revisions before and after.

    Safe to run twice at once (the second waits, then finds nothing to do) and on a database made
    before migrations existed (stamped as the baseline first).
    """
    with _migration_lock(engine) as conn:
        config = _config(conn)
        before = MigrationContext.configure(
            conn, opts={"version_table": VERSION_TABLE}
        ).get_current_revision()
        if before is None and sa.inspect(conn).has_table("model_versions"):
            log.info("platform tables made before migrations: stamping them as revision %s", BASELINE)
            command.stamp(config, BASELINE)
            conn.commit()
        command.upgrade(config, revision)
        conn.commit()
        after = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()
    if before != after:
        log.info("platform database migrated from %s to %s", before or "empty", after)
    return before, after


def check_current(engine: sa.Engine) -> None:
    """Fail unless the database is at the newest revision, naming the command that fixes it.

    Raises:
        SchemaBehindError: when the database is behind (or ahead of) this code.
    """
    found, needed = current(engine), head()
    if found != needed:
        where = engine.url.render_as_string(hide_password=True)
        raise SchemaBehindError(
            f"the platform database {where} is at schema revision {found or 'none (empty)'}, this code "
            f"needs {needed}: run `{UPGRADE_COMMAND}` (with the same connections) first"
        )


def new_revision(message: str) -> Path:
    """Write a revision autogenerated from the difference between the tables and the migrations.

    Compares `include.platform.tables` with an empty SQLite database upgraded to head; review it.
    """
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        engine = sa.create_engine(f"sqlite:///{tmp}/platform.db")
        upgrade(engine)
        with engine.connect() as conn:
            number = len(list(ScriptDirectory.from_config(_config()).walk_revisions())) + 1
            script = command.revision(
                _config(conn), message=message, autogenerate=True, rev_id=f"{number:04d}"
            )
        engine.dispose()
    return Path(script.path)


def platform_engine(conn_id: str) -> sa.Engine:
    """The platform database behind `conn_id`, checked to be at the newest revision (`check_current`)."""
    from include.io.connections import engine_for

    engine = engine_for(conn_id)
    check_current(engine)
    return engine
