"""The platform tables' migrations: they match the table definitions, adopt a database made before
them with every row kept, take turns when run at once, and tasks refuse a schema that is behind."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from include.platform import schema
from include.platform.schema import (
    VERSION_TABLE,
    SchemaBehindError,
    check_current,
    current,
    head,
    include_name,
    upgrade,
)
from include.platform.tables import metadata
from tests.integration import legacy_tables

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_engine(request, tmp_path):
    """An empty database of each kind."""
    if request.param == "sqlite":
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'platform.db'}")
        yield engine
        engine.dispose()
        return
    from tests.conftest import postgres_database

    with postgres_database("schema_test") as url:
        engine = sa.create_engine(url)
        yield engine
        engine.dispose()


def differences(engine: sa.Engine) -> list:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={"compare_type": True, "version_table": VERSION_TABLE, "include_name": include_name},
        )
        return compare_metadata(context, metadata)


def test_the_migrations_build_exactly_the_tables_the_code_defines(empty_engine):
    assert upgrade(empty_engine) == (None, head())

    # A column added to include/platform/tables.py without its revision shows up here.
    assert differences(empty_engine) == []


def test_a_second_upgrade_changes_nothing(empty_engine):
    upgrade(empty_engine)
    assert upgrade(empty_engine) == (head(), head())


# A value of each column type for row n (checked before plain Integer: Boolean is not, DateTime is a Date).
SAMPLES = (
    (sa.JSON, lambda n: {"n": n, "source": [1, 2]}),
    (sa.DateTime, lambda n: dt.datetime(2025, 3, n, 12, tzinfo=dt.UTC)),
    (sa.Date, lambda n: dt.date(2025, 3, n)),
    (sa.Boolean, lambda n: n % 2 == 0),
    (sa.Float, lambda n: n / 8),
    (sa.Integer, lambda n: n),
)


def _value(column: sa.Column, n: int):
    if column.name == "status":
        return "candidate"
    for kind, sample in SAMPLES:
        if isinstance(column.type, kind):
            return sample(n)
    text = f"{column.name}-{n}"
    return text[-column.type.length :] if getattr(column.type, "length", None) else text


def legacy_rows(table: sa.Table) -> list[dict]:
    return [{c.name: _value(c, n) for c in table.columns} for n in (1, 2, 3)]


def table_rows(engine: sa.Engine, table: sa.Table) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(*table.columns).order_by(*table.primary_key.columns)).mappings()
        return [{k: _plain(v) for k, v in r.items()} for r in rows]


def _plain(value):
    # SQLite hands back naive date-times: compare the instant.
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def test_upgrade_adopts_a_database_made_before_migrations_and_keeps_every_row(empty_engine):
    legacy_tables.metadata.create_all(empty_engine)
    with empty_engine.begin() as conn:
        for table in legacy_tables.metadata.sorted_tables:
            conn.execute(table.insert(), legacy_rows(table))
    before = {t.name: table_rows(empty_engine, t) for t in legacy_tables.metadata.sorted_tables}

    assert upgrade(empty_engine) == (None, head())

    for table in legacy_tables.metadata.sorted_tables:
        assert table_rows(empty_engine, table) == before[table.name], table.name
    assert differences(empty_engine) == []
    check_current(empty_engine)


def test_two_upgrades_at_once_take_turns(empty_engine):
    errors: list[BaseException] = []

    def migrate() -> None:
        try:
            upgrade(empty_engine)
        except BaseException as exc:  # the test reports any failure of either thread
            errors.append(exc)

    threads = [threading.Thread(target=migrate) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert current(empty_engine) == head()
    assert differences(empty_engine) == []


def test_a_schema_behind_the_code_fails_naming_the_command(empty_engine):
    with pytest.raises(
        SchemaBehindError, match=r"revision none \(empty\).*run `python -m include.cli db upgrade`"
    ):
        check_current(empty_engine)
    upgrade(empty_engine, schema.BASELINE)
    with pytest.raises(
        SchemaBehindError, match=f"at schema revision {schema.BASELINE}, this code needs {head()}"
    ):
        check_current(empty_engine)


def test_postgres_predictions_move_into_a_partition_per_day_and_back(empty_engine):
    """0016 on PostgreSQL: every existing day in a partition of its own, the default one empty;
    its downgrade gives back the plain table, every row kept."""
    if empty_engine.dialect.name != "postgresql":
        pytest.skip("SQLite keeps one predictions table")
    upgrade(empty_engine, "0014")
    # The table as it was at 0014 (0019 adds the multiclass columns).
    table = sa.Table(
        "predictions",
        sa.MetaData(),
        *(
            sa.Column(c.name, c.type, primary_key=c.primary_key)
            for c in metadata.tables["predictions"].columns
            if c.name not in ("predicted_class", "class_probabilities")
        ),
    )
    rows = [{c.name: _value(c, n) for c in table.columns} for n in (1, 2, 3)]
    rows += [{**row, "entity_id": f"{row['entity_id']}-b"} for row in rows]
    with empty_engine.begin() as conn:
        conn.execute(table.insert(), rows)
    before = table_rows(empty_engine, table)

    upgrade(empty_engine)
    partitions = (
        "SELECT c.relname, count(p.*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "LEFT JOIN predictions p ON p.tableoid = c.oid "
        "WHERE i.inhparent = 'predictions'::regclass GROUP BY c.relname ORDER BY c.relname"
    )
    with empty_engine.connect() as conn:
        found = conn.execute(sa.text(partitions)).all()
    days = [f"predictions__{row['use_case']}__{row['ds']:%Y%m%d}" for row in rows[:3]]
    assert found == sorted([*((name, 2) for name in days), ("predictions__default", 0)])
    assert table_rows(empty_engine, table) == before

    with empty_engine.begin() as conn:
        command_downgrade(conn, "0014")
    with empty_engine.connect() as conn:
        kind = conn.execute(sa.text("SELECT relkind FROM pg_class WHERE relname = 'predictions'")).scalar()
    assert kind == "r"
    assert table_rows(empty_engine, table) == before


def command_downgrade(conn: sa.Connection, revision: str) -> None:
    from alembic import command

    command.downgrade(schema._config(conn), revision)


def test_0017_records_the_chosen_trial_of_every_existing_version(empty_engine):
    """The trial with the version's family and parameters, the best CV mean among several (NaN never,
    ties to the smallest id); none when no stored trial matches."""
    upgrade(empty_engine, "0016")
    table = metadata.tables["model_versions"]

    def trial(trial_id: str, params: dict, mean: float) -> dict:
        family = trial_id.rsplit("-", 1)[0]
        return {
            "trial": {"trial_id": trial_id, "family": family, "params": params},
            "primary": "log_loss",
            "primary_mean": mean,
        }

    trials = [
        trial("random_forest-0", {"depth": 3}, 0.40),
        trial("random_forest-1", {"depth": 5}, 0.45),
        trial("random_forest-2", {"depth": 5}, 0.41),
        trial("random_forest-3", {"depth": 5}, 0.41),
        trial("dummy-0", {}, 0.69),
    ]
    rows = []
    for n, (family, params, stored) in enumerate(
        [("random_forest", {"depth": 5}, trials), ("dummy", {}, trials), ("random_forest", {"depth": 9}, [])],
        start=1,
    ):
        row = {c.name: _value(c, n) for c in table.columns if c.name != "chosen_trial"}
        rows.append(
            {**row, "use_case": "churn", "version": n, "family": family, "params": params, "trials": stored}
        )
    with empty_engine.begin() as conn:
        before = [sa.column(c.name, c.type) for c in table.columns if c.name != "chosen_trial"]
        conn.execute(sa.table("model_versions", *before).insert(), rows)

    upgrade(empty_engine)

    with empty_engine.connect() as conn:
        chosen = dict(conn.execute(sa.select(table.c.version, table.c.chosen_trial)).all())
    # log loss: lower is better; 0.41 twice, the smaller id wins.
    assert chosen == {1: "random_forest-2", 2: "dummy-0", 3: None}


def test_0021_numbers_every_existing_champion_move_in_order_and_keeps_it(empty_engine):
    """The moves keep their order (by when they were made) as entries 1, 2, ... per use case, marked
    as the gate's; a version may then be champion again (a rollback is a new entry)."""
    upgrade(empty_engine, "0020")
    before = sa.table(
        "champion_history",
        sa.column("use_case"),
        sa.column("version"),
        sa.column("ds", sa.Date),
        sa.column("previous_version"),
        sa.column("promoted_at", sa.DateTime(timezone=True)),
    )
    moved = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)
    rows = [
        ("churn", 3, dt.date(2025, 3, 8), 1, moved + dt.timedelta(days=7)),
        ("churn", 1, dt.date(2025, 3, 1), None, moved),
        ("prices", 2, dt.date(2025, 2, 1), None, moved),
    ]
    with empty_engine.begin() as conn:
        keys = ("use_case", "version", "ds", "previous_version", "promoted_at")
        conn.execute(before.insert(), [dict(zip(keys, row, strict=True)) for row in rows])

    upgrade(empty_engine)

    table = metadata.tables["champion_history"]
    with empty_engine.connect() as conn:
        found = conn.execute(
            sa.select(table.c.use_case, table.c.entry, table.c.version, table.c.kind).order_by(
                "use_case", "entry"
            )
        ).all()
    assert [tuple(r) for r in found] == [
        ("churn", 1, 1, "gate"),
        ("churn", 2, 3, "gate"),
        ("prices", 1, 2, "gate"),
    ]
    with empty_engine.begin() as conn:  # v1 champion again: a new entry, no key clash
        again = {"use_case": "churn", "entry": 3, "version": 1, "ds": dt.date(2025, 4, 1)}
        conn.execute(table.insert().values(**again, kind="rollback", actor="u", reason="r"))
