"""Fault: the scheduler crashes mid-backfill and is restarted (issue #12, "faults").

The scenario is the reliability suite's (`tools/reliability/faults.py`, `run_scheduler_kill`): its
whole process group is SIGKILLed, so the ingest tasks its LocalExecutor was running die with it; the
restarted scheduler marks the dead job failed, resets its orphaned task instances and runs them
again. The backfill must end as an undisturbed one did: one partition and one run record per day,
the same rows, the same figures.
"""

from __future__ import annotations

import pytest

from tools.reliability.__main__ import EXPECTED_ZERO
from tools.reliability.faults import run_scheduler_kill

pytestmark = pytest.mark.e2e


def test_a_scheduler_killed_mid_backfill_and_restarted_gives_the_undisturbed_result(pg_platform):
    figures = run_scheduler_kill(pg_platform).to_dict()
    assert figures["scheduler_kills"] == 1
    assert figures["orphans_reset"] > 0, figures["problems"]
    expected_zero = {k: figures[k] for k in EXPECTED_ZERO["faults"] if k in figures}
    assert expected_zero == dict.fromkeys(expected_zero, 0), figures["problems"]
