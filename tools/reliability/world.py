"""A small platform on disk for the reliability suite and its tests: seeded sources, a lake, tables.

The sources are the demo's (the real Telco rows over 90 days: a SQLite table and a folder of daily
CSV files), the lake a folder, the platform tables SQLite or a PostgreSQL URL. `env` holds the
connections a task body resolves, so a subprocess started with it runs the real task code.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:
    import datetime as dt

    import pandas as pd

PLATFORM_CONN, LAKE_CONN = "rel_platform", "rel_lake"


@dataclass(frozen=True)
class World:
    """Where everything lives, and the environment that points the task code at it."""

    root: Path
    platform_url: str
    env: dict[str, str]

    @property
    def lake(self) -> Path:
        return self.root / "lake"

    @property
    def bucket(self) -> Path:
        return self.root / "bucket"

    def platform(self) -> sa.Engine:
        return sa.create_engine(self.platform_url)

    def use(self) -> World:
        """Point this process's task code at the world (its env applied, the engine cache emptied); it."""
        from include.io.connections import engine_for

        os.environ.update(self.env)
        engine_for.cache_clear()
        return self


def connection(url: str) -> dict[str, Any]:
    """An Airflow connection (as `AIRFLOW_CONN_*` JSON fields) for a SQLAlchemy URL."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return {"conn_type": "sqlite", "host": parsed.database}
    fields = {"host": parsed.host, "port": parsed.port, "login": parsed.username, "schema": parsed.database}
    if parsed.password:
        fields["password"] = parsed.password
    return {"conn_type": "postgres", **fields}


def make_world(root: Path, platform_url: str | None = None, batch_rows: int | None = None) -> World:
    """Seed the churn sources under `root`, migrate the platform tables; the world.

    With `batch_rows`, the world's churn spec (a copy under `root / "specs"`) streams in batches of
    that many rows instead of the shipped spec's.
    """
    from include.io.stores import LocalStore
    from include.platform.schema import upgrade
    from include.usecases.spec import SPEC_DIR, get_spec
    from tools.demo.seed import seed
    from tools.testkit import write_changed_spec

    root.mkdir(parents=True, exist_ok=True)
    spec_dir = SPEC_DIR
    if batch_rows is not None:
        spec_dir = write_changed_spec(root / "specs", {"scoring": {"batch_rows": batch_rows}})
    source_url = f"sqlite:///{root / 'source.db'}"
    platform_url = platform_url or f"sqlite:///{root / 'platform.db'}"
    engine = sa.create_engine(source_url)
    seed(engine, LocalStore(root / "bucket"), get_spec("churn"))
    engine.dispose()
    platform = sa.create_engine(platform_url)
    upgrade(platform)
    platform.dispose()
    conns = {
        PLATFORM_CONN: connection(platform_url),
        LAKE_CONN: {"conn_type": "fs", "extra": {"path": str(root / "lake")}},
        "churn_source_db": connection(source_url),
        "churn_source_files": {"conn_type": "fs", "extra": {"path": str(root / "bucket")}},
    }
    env = {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(c) for conn_id, c in conns.items()}
    env |= {
        "PLATFORM_DB_CONN_ID": PLATFORM_CONN,
        "PLATFORM_LAKE_CONN_ID": LAKE_CONN,
        "PLATFORM_SPEC_DIR": str(spec_dir),
    }
    return World(root, platform_url, env)


def day_predictions(conn: sa.Connection, use_case: str, day: dt.date) -> pd.DataFrame:
    """The day's rows of the `predictions` table as the suite compares them: entity, score, version."""
    import pandas as pd

    from include.platform.tables import predictions

    return pd.read_sql(
        sa.select(predictions.c.entity_id, predictions.c.score, predictions.c.model_version).where(
            (predictions.c.use_case == use_case) & (predictions.c.ds == day)
        ),
        conn,
    )


@contextlib.contextmanager
def pg_database(admin_url: str, prefix: str) -> Iterator[str]:
    """A fresh database `<prefix>_<random>` on the server of `admin_url`, dropped after; its URL."""
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
