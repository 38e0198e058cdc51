"""Faults: the scoring publish's own database session killed mid-transaction (`pg_terminate_backend`).

The scenario is the reliability suite's (`tools/reliability/faults.py`, `run_session_kill`): the
run fails, the day's predictions and score record stay the undisturbed run's (the transaction never
committed), and the retry gives exactly the undisturbed run's rows.
"""

from __future__ import annotations

import pytest

from include.io.connections import engine_for
from tests.conftest import postgres_database
from tools.reliability.__main__ import EXPECTED_ZERO
from tools.reliability.faults import BATCH_ROWS, run_session_kill
from tools.reliability.world import make_world

pytestmark = pytest.mark.integration


@pytest.fixture
def world(tmp_path, monkeypatch):
    """PostgreSQL platform tables, the spec's scoring batches cut to BATCH_ROWS, its env applied."""
    with postgres_database("rel_faults") as url:
        world = make_world(
            tmp_path / "world", url.render_as_string(hide_password=False), batch_rows=BATCH_ROWS
        )
        for name, value in world.env.items():
            monkeypatch.setenv(name, value)
        engine_for.cache_clear()
        yield world
        engine_for.cache_clear()


def test_a_terminated_session_mid_write_fails_the_run_and_the_retry_matches(world):
    figures = run_session_kill(world).to_dict()
    assert figures["sessions_terminated"] == 1, figures["problems"]
    assert figures["rows_of_the_day"] > 3 * BATCH_ROWS  # the load spanned several batches
    expected_zero = {k: figures[k] for k in EXPECTED_ZERO["faults"] if k in figures}
    assert expected_zero == dict.fromkeys(expected_zero, 0), figures["problems"]
