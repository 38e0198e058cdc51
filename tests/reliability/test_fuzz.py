"""The API fuzz (tools/reliability/fuzz.py) at CI's count: no answer of 500, every refusal a 4xx that
says why, each status one the request's case allows, no server path shown.

The suite's `fuzz` section runs the same generator at its full count (`make reliability`: 3,000 and
2,000 requests); CI runs it here, once, at 2,000 (about 12 s of requests after a 10 s world: a random
forest champion promoted by the gate, a scored day), with Airflow's simple auth manager signing the
UI's tokens.
"""

from __future__ import annotations

import pytest

from include.io.connections import engine_for
from tools.reliability.fuzz import SERVING_FAMILIES, prepare, run_fuzz
from tools.reliability.world import make_world

SERVING, UI = 1200, 800


@pytest.fixture(scope="module")
def world(tmp_path_factory, airflow_db):
    from include.ui import app as ui_app

    world = make_world(tmp_path_factory.mktemp("fuzz"))
    patch = pytest.MonkeyPatch()
    for name, value in world.env.items():
        patch.setenv(name, value)
    engine_for.cache_clear()
    ui_app._engine.cache_clear()  # the UI's engine per connection id: this world's, not an earlier one
    prepare(world)
    yield world
    patch.undo()
    engine_for.cache_clear()
    ui_app._engine.cache_clear()


def test_no_request_to_either_api_gets_a_server_error(world):
    figures = run_fuzz(world, SERVING, UI, seed=23)
    assert figures.requests == {"serving": SERVING, "ui": UI + UI // 20}  # and the champion moves
    assert (figures.server_errors, figures.unexpected_status) == (0, 0), figures.problems
    assert (figures.unnamed_refusals, figures.path_leaks) == (0, 0), figures.problems
    # The count is meaningful: every family and auth state was sent, and each API refused and scored.
    assert {f"serving/{name}" for name, _ in SERVING_FAMILIES} <= set(figures.families)
    states = ("none", "forged", "expired", "unknown_role", "role_not_a_name", "viewer", "user", "admin")
    assert {f"ui/{state}" for state in states} <= set(figures.auth_states)
    assert {"200", "401", "404", "405", "413", "422"} <= set(figures.statuses["serving"])
    assert {"200", "401", "403", "404", "405", "422"} <= set(figures.statuses["ui"])
    assert "ui/champion_move" in figures.families
