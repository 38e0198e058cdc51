"""Every case of the bad-input corpus (tests/reliability_corpus/) has the outcome it expects.

Cases marked `xfail` are findings of issue #12 not fixed yet (ingest validation, #11): strict, so
that the fix that makes one pass also removes its mark.
"""

from __future__ import annotations

import pytest

from include.io.connections import engine_for
from tools.reliability.corpus import WORLD_KINDS, load_cases, run_case
from tools.reliability.world import make_world

CASES = load_cases()


def test_the_corpus_holds_at_least_40_cases_of_every_kind():
    assert len(CASES) >= 40
    assert {c.kind for c in CASES} == {"spec", "params", "keys", "model_files", "billing", "sql", "api"}
    assert len({(c.kind, c.id) for c in CASES}) == len(CASES)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    world = make_world(tmp_path_factory.mktemp("corpus"))
    patch = pytest.MonkeyPatch()
    for name, value in world.env.items():
        patch.setenv(name, value)
    engine_for.cache_clear()
    yield world
    patch.undo()
    engine_for.cache_clear()


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            c,
            marks=[pytest.mark.xfail(reason=c.xfail, raises=AssertionError, strict=True)] if c.xfail else [],
        )
        for c in CASES
    ],
    ids=[f"{c.kind}/{c.id}" for c in CASES],
)
def test_case(case, request):
    world = request.getfixturevalue("world") if case.kind in WORLD_KINDS else None
    outcome = run_case(case, world)
    assert outcome.ok, f"{outcome.case}: expected {case.expect}, got {outcome.actual}"
