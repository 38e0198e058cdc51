"""Faults: the scoring publish's own database session killed mid-transaction (`pg_terminate_backend`).

The run fails, the day's predictions stay the previous ones (the transaction never committed), and
the retry gives exactly the undisturbed run's rows.
"""

from __future__ import annotations

import datetime as dt
import re

import pandas as pd
import pytest
import sqlalchemy as sa

from include.io.connections import engine_for
from include.platform.tables import predictions
from include.registry.registry import Registry
from include.reliability import tasks
from include.reliability.world import make_world
from include.usecases.spec import SPEC_DIR
from tests.conftest import postgres_database

pytestmark = pytest.mark.integration

DAY = "2025-03-07"


@pytest.fixture
def world(tmp_path, monkeypatch):
    with postgres_database("rel_faults") as url:
        world = make_world(tmp_path / "world", url.render_as_string(hide_password=False))
        specs = tmp_path / "specs"
        specs.mkdir()
        # Small batches: the transaction stays open across several bulk writes.
        text = re.sub(r"batch_rows: \d+", "batch_rows: 10", (SPEC_DIR / "churn.yaml").read_text())
        (specs / "churn.yaml").write_text(text)
        for name, value in {**world.env, "PLATFORM_SPEC_DIR": str(specs)}.items():
            monkeypatch.setenv(name, value)
        engine_for.cache_clear()
        for n in range(21):
            tasks.ingest((dt.date(2025, 2, 15) + dt.timedelta(days=n)).isoformat(), "faults")
        trained = tasks.train(DAY, "faults", estimators=["logistic_regression"], n_trials=1, window_days=21)
        registry = Registry(world.platform())
        if not trained["passed"]:
            registry.promote("churn", trained["candidate"]["version"], None)
        yield world
        engine_for.cache_clear()


def day_rows(world) -> pd.DataFrame:
    engine = world.platform()
    with engine.connect() as conn:
        rows = pd.read_sql(
            sa.select(predictions.c.entity_id, predictions.c.score, predictions.c.model_version)
            .where(predictions.c.ds == dt.date.fromisoformat(DAY))
            .order_by(predictions.c.entity_id),
            conn,
        )
    engine.dispose()
    return rows


def test_a_terminated_session_mid_write_fails_the_run_and_the_retry_matches(world, monkeypatch):
    from include.scoring import score as scoring

    tasks.score(DAY, "undisturbed")
    undisturbed = day_rows(world)
    assert len(undisturbed) > 30

    killer = sa.create_engine(world.platform_url)
    terminated = []
    read_staged = scoring.read_staged

    def read_then_kill(*args, **kwargs):
        for i, batch in enumerate(read_staged(*args, **kwargs)):
            if i == 2:  # the day's delete and two bulk writes are in the open transaction
                with killer.connect() as conn:
                    terminated.extend(
                        conn.execute(
                            sa.text(
                                "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                                "AND xact_start IS NOT NULL"
                            )
                        ).all()
                    )
            yield batch

    monkeypatch.setattr(scoring, "read_staged", read_then_kill)
    with pytest.raises(Exception, match=r"(?i)terminat|connection|server closed|admin"):
        tasks.score(DAY, "disturbed")
    assert terminated, "no session of the task was in a transaction to terminate"
    pd.testing.assert_frame_equal(day_rows(world), undisturbed)  # the kill committed nothing

    monkeypatch.setattr(scoring, "read_staged", read_staged)
    tasks.score(DAY, "retry")
    pd.testing.assert_frame_equal(day_rows(world), undisturbed)
    killer.dispose()
