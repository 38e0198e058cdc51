"""A spec that validates builds its DAGs; one that does not fails its own DAGs only (issue #22, item 9).

Each test parses the real DAG folder over a spec folder holding churn.yaml and a copy named `upsell`
changed one way: churn's three DAGs must parse, and the import error must name upsell's file and key.
"""

from __future__ import annotations

import shutil

import pytest
import yaml

from include.usecases.spec import MAX_WINDOW_DAYS, MIN_IMPROVEMENT_RANGE, MIN_TRAINING_DAYS, N_TRIALS_RANGE
from tests.conftest import REPO
from tests.dags.test_dag_integrity import DAG_IDS, load_dagbag

CHURN_YAML = REPO / "include/usecases/churn.yaml"
UPSELL_IDS = ["upsell_ingest", "upsell_train", "upsell_score"]


@pytest.fixture
def upsell(tmp_path, monkeypatch):
    """Write churn.yaml and `upsell.yaml` (churn's spec under another name, each section updated with
    the changes given) in a spec folder the DAG files read."""

    def write(changes: dict[str, dict]) -> None:
        raw = yaml.safe_load(CHURN_YAML.read_text())
        raw["name"] = "upsell"
        for section, values in changes.items():
            raw[section].update(values)
        shutil.copy(CHURN_YAML, tmp_path / "churn.yaml")
        (tmp_path / "upsell.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))

    monkeypatch.setenv("PLATFORM_SPEC_DIR", str(tmp_path))
    return write


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        (
            {"schedule": {"timezone": "Mars/Phobos"}},
            "upsell.yaml: schedule.timezone: Value error, 'Mars/Phobos' is not an IANA time zone",
        ),
        (
            {"training": {"window_days": 7, "holdout_days": 2}},
            f"upsell.yaml: training.window_days: 7 is less than holdout_days + {MIN_TRAINING_DAYS} = 9",
        ),
        (
            {"training": {"n_trials": 99}},
            f"upsell.yaml: training.n_trials: Input should be less than or equal to {N_TRIALS_RANGE[1]}",
        ),
    ],
    ids=["unknown-time-zone", "window-below-holdout-plus-7", "n-trials-above-the-form"],
)
def test_a_bad_spec_beside_churn_fails_its_own_dags_only(upsell, changes, error):
    upsell(changes)

    dagbag = load_dagbag()

    assert set(DAG_IDS) <= set(dagbag.dags)
    assert not set(UPSELL_IDS) & set(dagbag.dags)
    [(path, message)] = dagbag.import_errors.items()
    assert path.endswith("spec_errors.py")
    assert error in message


def test_a_spec_on_every_bound_of_the_training_form_builds_its_dags(upsell):
    least_window = 14 + MIN_TRAINING_DAYS
    upsell(
        {
            "training": {"holdout_days": 14, "window_days": least_window, "n_trials": N_TRIALS_RANGE[1]},
            "gate": {"min_improvement": MIN_IMPROVEMENT_RANGE[1]},
        }
    )

    dagbag = load_dagbag()

    assert dagbag.import_errors == {}
    assert set(DAG_IDS + UPSELL_IDS) <= set(dagbag.dags)


def test_the_training_form_has_the_specs_bounds():
    params = load_dagbag().dags["churn_train"].params
    holdout = yaml.safe_load(CHURN_YAML.read_text())["training"]["holdout_days"]

    def bounds(name: str) -> tuple:
        schema = params.get_param(name).schema
        return schema["minimum"], schema["maximum"]

    assert bounds("n_trials") == N_TRIALS_RANGE
    assert bounds("min_improvement") == MIN_IMPROVEMENT_RANGE
    assert bounds("window_days") == (holdout + MIN_TRAINING_DAYS, MAX_WINDOW_DAYS)


def test_a_dag_that_fails_to_build_anyway_is_an_import_error_naming_its_spec_file(upsell, monkeypatch):
    """The net for what the spec checks miss: here upsell's tasks cannot be made (a retries count
    that is not a number), half-way through building each of its DAGs."""
    import include.dag_settings

    shared = include.dag_settings.default_args

    def default_args(spec, settings):
        args = shared(spec, settings)
        return {**args, "retries": "many"} if spec.name == "upsell" else args

    monkeypatch.setattr(include.dag_settings, "default_args", default_args)
    upsell({})

    dagbag = load_dagbag()

    assert set(DAG_IDS) <= set(dagbag.dags)
    assert not set(UPSELL_IDS) & set(dagbag.dags), "a half-built DAG must not be registered"
    [(path, message)] = dagbag.import_errors.items()
    assert path.endswith("spec_errors.py")
    for dag_file in ("ingest.py", "train.py", "score.py"):
        assert f"upsell.yaml: its DAG in {dag_file} cannot be built: TypeError: 'retries'" in message
    assert "churn.yaml" not in message


def test_the_spec_errors_file_holds_no_dag():
    """It runs the DAG files again to find what failed to build: their DAGs must stay theirs."""
    dagbag = load_dagbag()

    assert dagbag.import_errors == {}
    assert not [d.dag_id for d in dagbag.dags.values() if d.fileloc.endswith("spec_errors.py")]
