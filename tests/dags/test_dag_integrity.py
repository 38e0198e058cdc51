"""Every DAG file imports cleanly and fast, and every DAG states what operators rely on."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import pytest
import yaml

from tests.conftest import REPO


def load_dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


@pytest.fixture(scope="module")
def dagbag():
    return load_dagbag()


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


DAG_IDS = ["churn_ingest", "churn_train", "churn_score"]


def test_dags_come_from_the_specs(dagbag):
    assert set(DAG_IDS) <= set(dagbag.dags)


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_dag_states_what_operators_need(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert dag.tags and "churn" in dag.tags
    assert dag.doc_md and dag.catchup is False
    assert dag.max_active_runs is not None
    for task in dag.tasks:
        assert task.retries >= 1, task.task_id
        assert task.owner == "ml-platform"
    for name, param in dag.params.items():
        assert param.description, f"{dag_id}: param {name!r} has no description"
        assert "type" in param.schema, f"{dag_id}: param {name!r} has no type"


def test_daily_dags_use_data_interval_timetables(dagbag):
    """Scheduled runs cover [ds, ds + 1 day): the logical date is the start of the day processed."""
    from airflow.sdk import CronDataIntervalTimetable

    for dag_id in ("churn_ingest", "churn_score"):
        assert isinstance(dagbag.dags[dag_id].timetable, CronDataIntervalTimetable), dag_id


def test_training_runs_weekly_and_on_the_retrain_asset(dagbag):
    from include.assets import retrain_asset

    train = dagbag.dags["churn_train"]
    assert retrain_asset("churn") in train.timetable.asset_condition.objects
    assert train.timetable.timetable.expression == "0 3 * * 1"
    score = dagbag.dags["churn_score"]
    assert any(retrain_asset("churn") in task.outlets for task in score.tasks)


def test_dag_folder_parses_within_budget():
    """Parsing imports no pandas, scikit-learn or pyarrow: a fresh interpreter parses the folder fast."""
    code = (
        "import json, sys, time\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        "started = time.perf_counter()\n"
        f"DagBag(dag_folder={str(REPO / 'dags')!r})\n"
        "heavy = [m for m in ('pandas', 'sklearn', 'pyarrow', 'pandera') if m in sys.modules]\n"
        "print('RESULT', json.dumps({'seconds': time.perf_counter() - started, 'heavy': heavy}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert result["seconds"] < 3.0
    assert not {"sklearn", "pandera"} & set(result["heavy"])


def test_a_second_spec_adds_its_dags_with_no_python_change(tmp_path, monkeypatch):
    spec = yaml.safe_load((REPO / "include/usecases/churn.yaml").read_text())
    spec["name"] = "churn_eu"
    shutil.copy(REPO / "include/usecases/churn.yaml", tmp_path / "churn.yaml")
    (tmp_path / "churn_eu.yaml").write_text(yaml.safe_dump(spec))
    monkeypatch.setenv("PLATFORM_SPEC_DIR", str(tmp_path))
    started = time.perf_counter()
    dags = load_dagbag().dags
    assert {"churn_ingest", "churn_eu_ingest"} <= set(dags)
    assert time.perf_counter() - started < 10


def test_a_bad_spec_is_an_import_error_naming_the_key(tmp_path, monkeypatch):
    spec = yaml.safe_load((REPO / "include/usecases/churn.yaml").read_text())
    spec["gate"]["flor"] = 0.7
    (tmp_path / "churn.yaml").write_text(yaml.safe_dump(spec))
    monkeypatch.setenv("PLATFORM_SPEC_DIR", str(tmp_path))
    errors = load_dagbag().import_errors
    assert errors, "a bad spec must fail the DAG import"
    assert any("gate.flor" in message for message in errors.values())


def test_a_bad_spec_fails_its_own_dags_only(tmp_path, monkeypatch):
    """Finding 4: each DAG file loaded every spec and the first bad one raised, so every use case's
    DAGs disappeared. Now the good specs' DAGs load and the bad file is an import error naming it."""
    good = yaml.safe_load((REPO / "include/usecases/churn.yaml").read_text())
    bad = {**good, "name": "upsell", "gate": {**good["gate"], "flor": 0.7}}
    (tmp_path / "churn.yaml").write_text(yaml.safe_dump(good))
    (tmp_path / "upsell.yaml").write_text(yaml.safe_dump(bad))
    monkeypatch.setenv("PLATFORM_SPEC_DIR", str(tmp_path))

    dagbag = load_dagbag()

    assert set(DAG_IDS) <= set(dagbag.dags)
    assert not any(dag_id.startswith("upsell") for dag_id in dagbag.dags)
    [(path, message)] = dagbag.import_errors.items()
    assert path.endswith("spec_errors.py")
    assert "upsell.yaml: gate.flor" in message


def test_training_trials_go_to_the_train_queue_and_the_rest_to_default(dagbag):
    for dag_id in DAG_IDS:
        for task in dagbag.dags[dag_id].tasks:
            expected = {("churn_train", "trial"): "train", ("churn_score", "score_shard"): "score"}.get(
                (dag_id, task.task_id), "default"
            )
            assert task.queue == expected, f"{dag_id}.{task.task_id}"


def test_queues_and_the_retry_delay_come_from_the_environment(monkeypatch):
    import datetime as dt

    monkeypatch.setenv("PLATFORM_TRAIN_QUEUE", "gpu")
    monkeypatch.setenv("PLATFORM_DEFAULT_QUEUE", "batch")
    monkeypatch.setenv("PLATFORM_TASK_RETRY_DELAY_SECONDS", "7")
    dags = load_dagbag().dags
    assert dags["churn_train"].get_task("trial").queue == "gpu"
    assert dags["churn_train"].get_task("plan").queue == "batch"
    assert dags["churn_ingest"].get_task("ingest").retry_delay == dt.timedelta(seconds=7)


def test_a_spec_with_outcomes_gets_an_evaluate_dag_that_feeds_the_retrain_asset(dagbag):
    evaluate = dagbag.dags["churn_evaluate"]
    assert [t.task_id for t in evaluate.topological_sort()] == [
        "wait_for_scoring",
        "ingest_outcomes",
        "evaluate",
        "decay_due",
        "request_retrain",
    ]
    [outlet] = evaluate.get_task("request_retrain").outlets
    assert outlet == dagbag.dags["churn_score"].get_task("request_retrain").outlets[0]


def test_a_spec_without_outcomes_has_no_evaluate_dag(tmp_path, monkeypatch):
    spec = yaml.safe_load((REPO / "include/usecases/churn.yaml").read_text())
    del spec["outcomes"]
    (tmp_path / "churn.yaml").write_text(yaml.safe_dump(spec))
    monkeypatch.setenv("PLATFORM_SPEC_DIR", str(tmp_path))
    dags = load_dagbag().dags
    assert {"churn_ingest", "churn_train", "churn_score"} <= set(dags) and "churn_evaluate" not in dags


def test_a_spec_asking_for_approval_waits_for_a_person_before_promoting(dagbag, tmp_path, monkeypatch):
    from airflow.providers.standard.operators.hitl import HITLOperator

    from tools.testkit import write_changed_spec

    specs = write_changed_spec(tmp_path, {"gate": {"approval": {"timeout_hours": 2}}})
    monkeypatch.setenv("PLATFORM_SPEC_DIR", str(specs))
    bag = load_dagbag()
    assert bag.import_errors == {}
    train = bag.dags["churn_train"]
    approve = train.get_task("approve")
    assert isinstance(approve, HITLOperator) and approve.response_timeout.total_seconds() == 7200
    assert (approve.options, approve.defaults) == (
        ["Approve", "Reject"],
        ["Reject"],
    )  # no answer: not promoted
    assert train.get_task("gate").downstream_task_ids == {"approval_request"}
    assert approve.upstream_task_ids == {"approval_request"}
    assert approve.downstream_task_ids == {"promote"}  # which reads the answer
    assert "approve" not in dagbag.dags["churn_train"].task_ids  # the shipped spec promotes at once
