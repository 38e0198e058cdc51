"""The ingest run record vouches only for a complete run: a kill between writes leaves none.

Finding 6: the quarantine and the partition were rewritten before the record, and the scoring
sensor trusted the old record meanwhile.
"""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from include.io.connections import engine_for
from include.io.stores import LocalStore
from include.platform.tables import ingest_runs
from include.runs import RunFacts, Stores
from tools.reliability.world import make_world

pytestmark = pytest.mark.integration

DAY = "2025-03-05"


@pytest.fixture
def world(tmp_path, monkeypatch):
    world = make_world(tmp_path / "world")
    for name, value in world.env.items():
        monkeypatch.setenv(name, value)
    engine_for.cache_clear()  # the source connection ids are the spec's, shared with other tests
    yield world
    engine_for.cache_clear()


def ingest(run_id: str) -> dict:
    from include.ingest.task import run_ingest

    return run_ingest(RunFacts.of("churn", DAY, run_id), Stores.from_settings()).to_dict()


def ready() -> bool:
    from include.scoring.task import partition_ready

    return partition_ready(RunFacts.of("churn", DAY, "score"), Stores.from_settings())


def drop_billing_row(world) -> None:
    """The day's billing file loses one customer: a rerun quarantines that id's snapshot row."""
    bucket = LocalStore(world.bucket)
    [key] = bucket.list_keys(f"billing/ds={DAY}/")
    lines = bucket.read_bytes(key).decode().splitlines(keepends=True)
    bucket.put_bytes(key, "".join(lines[:-1]).encode())


def test_a_kill_between_the_writes_and_the_record_leaves_scoring_waiting(world, monkeypatch):
    first = ingest("first")
    assert ready()

    drop_billing_row(world)

    def killed(*args, **kwargs):
        raise SystemExit("SIGKILL stand-in: quarantine and partition written, no record")

    monkeypatch.setattr("include.ingest.pipeline.record_ingest_run", killed)
    with pytest.raises(SystemExit):
        ingest("killed")
    # The lake now holds the rerun's quarantine and partition: no record may vouch for the old counts.
    assert not ready()

    monkeypatch.undo()
    for name, value in world.env.items():
        monkeypatch.setenv(name, value)
    second = ingest("rerun")
    assert ready()
    assert second["counts"]["written"] == first["counts"]["written"] - 1
    assert sum(second["counts"]["quarantined"].values()) == 1


def test_the_sensor_refuses_a_record_the_lake_disagrees_with(world, caplog):
    ingest("first")
    engine = world.platform()
    with engine.begin() as conn:
        conn.execute(sa.update(ingest_runs).values(rows_written=ingest_runs.c.rows_written + 1))

    assert not ready()
    assert "the record says" in caplog.text and "holds" in caplog.text

    with engine.begin() as conn:
        conn.execute(sa.update(ingest_runs).values(rows_written=ingest_runs.c.rows_written - 1))
        uri = conn.execute(sa.select(ingest_runs.c.partition_uri)).scalar_one()
    assert ready()
    LocalStore(world.lake).delete(LocalStore(world.lake).key_of(uri))
    assert not ready()
    assert json.dumps("is missing")[1:-1] in caplog.text
