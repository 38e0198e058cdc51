"""A run's facts: the spec read once and hashed, the form's overrides applied once, a changed spec refused."""

from __future__ import annotations

import datetime as dt

import pytest

from include.partition import PartitionError
from include.runs import RunFacts, SpecChanged
from include.usecases.spec import SPEC_DIR
from tools.testkit import write_changed_spec


@pytest.fixture
def specs(tmp_path, monkeypatch):
    folder = write_changed_spec(tmp_path / "specs", {})
    monkeypatch.setenv("PLATFORM_SPEC_DIR", str(folder))
    return folder


def test_a_run_knows_its_day_its_spec_file_and_the_files_hash(specs):
    run = RunFacts.of("churn", "2025-03-05", "manual")

    assert (run.use_case, run.ds, run.run_id) == ("churn", dt.date(2025, 3, 5), "manual")
    assert run.spec_path == specs / "churn.yaml"
    assert len(run.spec_sha256) == 64
    assert RunFacts.of("churn", "2025-03-06", "other").spec_sha256 == run.spec_sha256


def test_the_forms_overrides_are_applied_once_and_validated_like_the_file(specs):
    run = RunFacts.of("churn", "2025-03-05", "manual", n_trials=2, estimators=["dummy"], min_improvement=0.05)

    assert (run.spec.training.n_trials, run.spec.training.estimators) == (2, ("dummy",))
    assert run.spec.gate.min_improvement == 0.05
    empty = RunFacts.of("churn", "2025-03-05", "manual", n_trials=None, estimators=[])
    assert empty.spec == RunFacts.of("churn", "2025-03-05", "manual").spec


def test_a_spec_changed_during_a_run_is_refused_naming_the_file_and_both_hashes(specs):
    first = RunFacts.of("churn", "2025-03-05", "scheduled")
    write_changed_spec(specs, {"scoring": {"batch_rows": 40}})
    later = RunFacts.of("churn", "2025-03-05", "scheduled")

    later.check_spec(later.spec_sha256)
    with pytest.raises(SpecChanged, match=r"churn\.yaml: the spec changed during run scheduled") as raised:
        later.check_spec(first.spec_sha256)
    assert first.spec_sha256[:12] in str(raised.value) and later.spec_sha256[:12] in str(raised.value)


def test_a_bad_ds_names_the_param():
    with pytest.raises(PartitionError, match="ds must be a date as YYYY-MM-DD, got '2025-13-01'"):
        RunFacts.of("churn", "2025-13-01", "manual")


def test_the_shipped_spec_folder_is_the_default(monkeypatch):
    monkeypatch.delenv("PLATFORM_SPEC_DIR", raising=False)
    assert RunFacts.of("churn", "2025-03-05", "manual").spec_path == SPEC_DIR / "churn.yaml"
