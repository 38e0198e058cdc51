"""The demo's driver: waiting for runs in flight, the ingest days training needs, the phase timings."""

from __future__ import annotations

import sys

import pytest

from tools.demo import airflow_api
from tools.demo.airflow_api import in_flight, wait_until_idle
from tools.demo.run import Phases, training_window, wait_for_days


class FakeApi:
    """Answers `get` from a list of states, one per poll: each state maps a path prefix to a body."""

    base_url = "http://127.0.0.1:8080"

    def __init__(self, polls: list[dict[str, dict]]) -> None:
        self.polls = polls
        self.poll = 0
        self.paths: list[str] = []

    def get(self, path: str) -> dict:
        self.paths.append(path)
        state = self.polls[min(self.poll, len(self.polls) - 1)]
        for prefix, body in state.items():
            if path.startswith(prefix) and all(part in path for part in body.get("_match", [])):
                return {k: v for k, v in body.items() if k != "_match"}
        raise AssertionError(f"unexpected call {path}")


def idle_state(runs: list[str] = (), events: int = 0) -> dict[str, dict]:
    return {
        "/dags/churn_train/assets/queuedEvents": {"queued_events": [{"asset_id": 7}] * events},
        "/dags/churn_train/dagRuns": {"dag_runs": [{"dag_run_id": r} for r in runs]},
    }


@pytest.fixture
def no_sleep(monkeypatch):
    """Polls without waiting; each sleep moves the fake API to its next state."""
    apis: list[FakeApi] = []

    def sleep(_seconds: float) -> None:
        for api in apis:
            api.poll += 1

    monkeypatch.setattr(airflow_api.time, "sleep", sleep)
    monkeypatch.setattr(sys.modules["tools.demo.run"].time, "sleep", sleep)
    return apis


def test_in_flight_names_queued_runs_and_queued_asset_events():
    api = FakeApi([idle_state(["asset_triggered__x"], events=1)])
    assert in_flight(api, ["churn_train"]) == {"churn_train": ["asset_triggered__x", "asset event 7 queued"]}
    # Events are read before runs: an event that turns into a run between the two calls is seen.
    assert api.paths[0].endswith("/assets/queuedEvents")
    assert "state=queued&state=running" in api.paths[1]


def test_waits_for_a_retrain_asked_for_then_for_its_run(no_sleep):
    # An asset event waits, then its run is queued, runs, and everything is idle twice in a row.
    api = FakeApi([idle_state(events=1), idle_state(["r"]), idle_state(["r"]), idle_state(), idle_state()])
    no_sleep.append(api)
    wait_until_idle(api, ["churn_train"], poll=0)
    assert api.poll == 4  # idle seen on the 4th and 5th polls, not before


def test_one_idle_poll_is_not_enough(no_sleep):
    # A task ending between the calls may queue a run the next poll sees: idle must hold twice.
    api = FakeApi([idle_state(), idle_state(["r"]), idle_state(), idle_state()])
    no_sleep.append(api)
    wait_until_idle(api, ["churn_train"], poll=0)
    assert api.poll == 3


def test_a_run_that_never_ends_times_out_naming_it(monkeypatch):
    api = FakeApi([idle_state(["asset_triggered__stuck"])])
    clock = iter(range(0, 10_000, 5))
    monkeypatch.setattr(airflow_api.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(airflow_api.time, "sleep", lambda _s: None)
    with pytest.raises(TimeoutError, match="churn_train: asset_triggered__stuck"):
        wait_until_idle(api, ["churn_train"], timeout=60)


def test_the_summary_stops_with_a_clear_message_when_runs_stay_in_flight(monkeypatch):
    from tools.demo import summary

    def stuck(api, dag_ids, timeout):
        raise TimeoutError("still in flight after 1s: churn_train: r")

    monkeypatch.setattr(summary, "wait_until_idle", stuck)
    with pytest.raises(SystemExit, match=r"did not all finish within 1 s .*churn_train: r"):
        summary.wait_for_in_flight(FakeApi([{}]), ("churn_train",), timeout=1)


def test_the_first_training_window_is_the_spec_s_60_days():
    assert training_window("2025-03-01") == ("2025-01-01", "2025-03-01")


def day_counts(success: int, failed: int = 0) -> dict[str, dict]:
    return {
        "/dags/churn_ingest/dagRuns": {"total_entries": failed, "_match": ["state=failed"]},
        "/dags/churn_ingest/dagRuns?": {"total_entries": success, "_match": ["state=success"]},
    }


def test_training_waits_for_every_day_of_its_window(no_sleep):
    api = FakeApi([day_counts(10), day_counts(59), day_counts(60)])
    no_sleep.append(api)
    wait_for_days(api, "churn_ingest", "2025-01-01", "2025-03-01")
    assert api.poll == 2
    assert "logical_date_gte=2025-01-01T00:00:00Z&logical_date_lte=2025-03-01T00:00:00Z" in api.paths[0]


def test_a_failed_day_stops_the_wait(no_sleep):
    api = FakeApi([day_counts(30, failed=1)])
    with pytest.raises(RuntimeError, match=r"2025-01-01\.\.2025-03-01 failed"):
        wait_for_days(api, "churn_ingest", "2025-01-01", "2025-03-01")


def test_phases_are_timed_one_after_the_other(monkeypatch):
    clock = iter([100.0, 108.5, 120.0])
    monkeypatch.setattr(sys.modules["tools.demo.run"].time, "perf_counter", lambda: next(clock))
    phases = Phases()
    phases.done("seed")
    phases.done("ingest")
    assert phases.seconds == {"seed": 8.5, "ingest": 11.5}


def test_the_registry_table_shows_each_version_s_gate_decision(monkeypatch):
    from include import cli
    from tools.demo import summary

    version = {"status": "rejected", "aliases": "", "ds": "2025-03-31", "family": "dummy", "roc_auc": 0.5}
    monkeypatch.setattr(
        cli,
        "models",
        lambda _use_case: [
            {
                **version,
                "version": 1,
                "status": "champion",
                "aliases": "champion",
                "accuracy": 0.7,
                "sha256": "a" * 64,
            },
            {**version, "version": 2, "accuracy": 0.7, "sha256": "b" * 64},
            {**version, "version": 3, "status": "candidate", "accuracy": 0.7, "sha256": "c" * 64},
        ],
    )
    monkeypatch.setattr(
        cli,
        "gate",
        lambda _use_case: [
            {"candidate_version": 1, "passed": True},
            {"candidate_version": 2, "passed": False},
        ],
    )
    lines = summary._models_table().splitlines()
    assert lines[0].split()[:3] == ["version", "status", "gate"]
    assert [line.split()[:3] for line in lines[1:]] == [
        ["1", "champion", "passed"],
        ["2", "rejected", "rejected"],
        ["3", "candidate", "none"],
    ]
