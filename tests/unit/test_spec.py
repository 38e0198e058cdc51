"""The use-case spec: churn.yaml loads, and each kind of mistake fails naming the file and the key."""

from __future__ import annotations

import copy
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from include.usecases.spec import (
    MAX_NAME_CHARS,
    MAX_WINDOW_DAYS,
    MIN_IMPROVEMENT_RANGE,
    MIN_TRAINING_DAYS,
    N_TRIALS_RANGE,
    SPEC_DIR,
    START_DATE_RANGE,
    SpecError,
    UseCase,
    get_spec,
    load_spec,
    load_specs,
)
from tools.testkit import write_changed_spec

CHURN_YAML = SPEC_DIR / "churn.yaml"


@pytest.fixture(scope="module")
def churn_dict() -> dict:
    return yaml.safe_load(CHURN_YAML.read_text())


def write_spec(folder: Path, raw: dict, name: str = "broken.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_churn_spec_loads_with_its_dag_ids():
    spec = get_spec("churn")

    assert spec.name == "churn"
    assert (spec.ingest_dag_id, spec.train_dag_id, spec.score_dag_id) == (
        "churn_ingest",
        "churn_train",
        "churn_score",
    )
    assert [s.name for s in spec.sources] == ["snapshots", "billing"]
    assert spec.entity_id == "customerID"
    assert spec.label.column == "Churn"
    assert spec.columns["TotalCharges"].nullable


def test_a_changed_copy_changes_only_the_values_given(tmp_path):
    folder = write_changed_spec(
        tmp_path / "specs", {"scoring": {"batch_rows": 40}, "training": {"cv_folds": 2}}
    )

    changed, shipped = get_spec("churn", folder), get_spec("churn")
    assert (changed.scoring.batch_rows, changed.training.cv_folds) == (40, 2)
    assert changed.scoring.shard_rows == shipped.scoring.shard_rows
    assert changed.model_copy(update={"scoring": shipped.scoring, "training": shipped.training}) == shipped


def test_the_unchanged_dict_round_trips(tmp_path, churn_dict):
    # Guards the helpers below: a dump of the untouched spec must load, so each failure is the mutation's.
    assert load_spec(write_spec(tmp_path, churn_dict)) == load_spec(CHURN_YAML)


def test_a_spec_dumped_with_its_defaults_validates_again():
    # What a task does with a run's overrides (include/training/task.py): every default is then set.
    spec = load_spec(CHURN_YAML)

    assert UseCase.model_validate(spec.model_dump()) == spec


def _unknown_top_level_key(raw: dict) -> None:
    raw["colour"] = "blue"


def _feature_not_in_columns(raw: dict) -> None:
    raw["features"]["numeric"].append("Age")


def _source_column_not_declared(raw: dict) -> None:
    raw["sources"][1]["columns"].append("Discount")


def _column_no_source_provides(raw: dict) -> None:
    raw["columns"]["Region"] = {"type": "string"}


def _bad_cron(raw: dict) -> None:
    raw["schedule"]["ingest"] = "61 * * * *"


def _accuracy_not_gated(raw: dict) -> None:
    raw["gate"]["guardrails"] = {"f1": 0.05}


def _holdout_not_inside_window(raw: dict) -> None:
    raw["training"]["holdout_days"] = raw["training"]["window_days"]


def _files_prefix_without_ds(raw: dict) -> None:
    raw["sources"][1]["prefix"] = "billing/"


def _no_rows_per_shard(raw: dict) -> None:
    raw["scoring"]["shard_rows"] = 0


def _table_not_an_identifier(raw: dict) -> None:
    raw["sources"][0]["table"] = "customer_snapshots; DROP TABLE users"


def _recursive_on_a_sql_source(raw: dict) -> None:
    raw["sources"][0]["recursive"] = True


def _three_valued_label_cut_undeclared(raw: dict) -> None:
    raw["columns"]["Churn"]["allowed"] = ["Yes", "No", "Maybe"]


def _recursive_not_a_boolean(raw: dict) -> None:
    raw["sources"][1]["recursive"] = "sometimes"


def _outcomes(**source) -> dict:
    base = {"name": "outcomes", "kind": "sql", "conn_id": "churn_source_db", "table": "churn_outcomes"}
    return {"source": {**base, "date_column": "observed", **source}, "maturity_days": 30}


def _outcomes_without_the_label(raw: dict) -> None:
    raw["outcomes"] = _outcomes(columns=["customerID"])


def _outcomes_with_a_feature(raw: dict) -> None:
    raw["outcomes"] = _outcomes(columns=["customerID", "Churn", "tenure"])


def _outcomes_named_as_a_feature_source(raw: dict) -> None:
    raw["outcomes"] = _outcomes(name="billing", columns=["customerID", "Churn"])


def _outcomes_maturing_never(raw: dict) -> None:
    raw["outcomes"] = {**_outcomes(columns=["customerID", "Churn"]), "maturity_days": 1000}


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_unknown_top_level_key, ["colour", "not permitted"]),
        (
            _outcomes_without_the_label,
            ["outcomes.source.columns: must be the entity id and the label, 'Churn'"],
        ),
        (
            _outcomes_with_a_feature,
            ["outcomes.source.columns: 'tenure' is neither the entity id nor the label"],
        ),
        (_outcomes_named_as_a_feature_source, ["outcomes.source.name: 'billing' is also a feature source"]),
        (_outcomes_maturing_never, ["outcomes.maturity_days", "less than or equal to 730"]),
        (_feature_not_in_columns, ["features.numeric", "'Age'", "not in `columns`"]),
        (_source_column_not_declared, ["sources.billing.columns", "'Discount'", "not in `columns`"]),
        (_column_no_source_provides, ["columns.Region", "no source provides it"]),
        (_bad_cron, ["schedule.ingest", "cron", "'61 * * * *'"]),
        (_accuracy_not_gated, ["gate.guardrails: accuracy must be the primary metric or a guard-rail"]),
        (_holdout_not_inside_window, ["training.window_days: 60 is less than holdout_days + 7 = 67"]),
        (_files_prefix_without_ds, ["sources.1.prefix: must contain {ds}"]),
        (_no_rows_per_shard, ["scoring.shard_rows", "greater than 0"]),
        (
            _table_not_an_identifier,
            ["sources.0.table: 'customer_snapshots; DROP TABLE users' is not a plain SQL identifier"],
        ),
        (_recursive_on_a_sql_source, ["sources.0.recursive: is for a files source"]),
        (_recursive_not_a_boolean, ["sources.1.recursive", "boolean"]),
        (
            _three_valued_label_cut_undeclared,
            ["label.positive: the label 'Churn' has 3 values ['Maybe', 'No', 'Yes']", "one_vs_rest: true"],
        ),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else None,
)
def test_a_bad_spec_fails_naming_the_file_and_the_key(
    tmp_path, churn_dict, mutate: Callable[[dict], None], expected: list[str]
):
    raw = copy.deepcopy(churn_dict)
    mutate(raw)
    path = write_spec(tmp_path, raw)

    with pytest.raises(SpecError) as caught:
        load_spec(path)

    message = str(caught.value)
    assert message.startswith("broken.yaml: ")
    for part in expected:
        assert part in message


def _set(section: str, **values) -> Callable[[dict], None]:
    def mutate(raw: dict) -> None:
        raw[section].update(values)

    return mutate


# Each bound a DAG puts on a spec value (its trigger form, its timetable, its tags), just outside.
@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            _set("schedule", timezone="Mars/Phobos"),
            "schedule.timezone: Value error, 'Mars/Phobos' is not an IANA time zone",
        ),
        (_set("schedule", timezone="../../etc/passwd"), "schedule.timezone: Value error, '../../etc/passwd'"),
        (_set("schedule", timezone="local"), "schedule.timezone: Value error, 'local' is not an IANA"),
        (
            _set("training", n_trials=N_TRIALS_RANGE[1] + 1),
            f"training.n_trials: Input should be less than or equal to {N_TRIALS_RANGE[1]}",
        ),
        (
            _set("training", n_trials=N_TRIALS_RANGE[0] - 1),
            f"training.n_trials: Input should be greater than or equal to {N_TRIALS_RANGE[0]}",
        ),
        (
            _set("training", window_days=MAX_WINDOW_DAYS + 1),
            f"training.window_days: Input should be less than or equal to {MAX_WINDOW_DAYS}",
        ),
        (
            _set("training", window_days=7, holdout_days=2),
            f"training.window_days: 7 is less than holdout_days + {MIN_TRAINING_DAYS} = 9",
        ),
        (
            _set("gate", min_improvement=MIN_IMPROVEMENT_RANGE[1] + 0.5),
            f"gate.min_improvement: Input should be less than or equal to {MIN_IMPROVEMENT_RANGE[1]:g}",
        ),
        (
            _set("gate", min_improvement=MIN_IMPROVEMENT_RANGE[0] - 0.1),
            f"gate.min_improvement: Input should be greater than or equal to {MIN_IMPROVEMENT_RANGE[0]:g}",
        ),
        (_set("training", estimators=[]), "training.estimators: Tuple should have at least 1 item"),
        (_set("training", estimators=["dummy", "dummy"]), "training.estimators: dummy named more than once"),
        (
            _set("schedule", start_date="0001-01-01"),
            "schedule.start_date: Value error, 0001-01-01 is outside {}..{}".format(*START_DATE_RANGE),
        ),
        (_set("schedule", train="0 0 30 2 *"), "schedule.train: Value error, '0 0 30 2 *' names no date"),
        (
            lambda raw: raw.update(name="a" * (MAX_NAME_CHARS + 1)),
            f"name: String should have at most {MAX_NAME_CHARS} characters",
        ),
    ],
)
def test_a_value_its_dags_would_refuse_fails_naming_the_key_and_the_bound(
    tmp_path, churn_dict, mutate: Callable[[dict], None], expected: str
):
    raw = copy.deepcopy(churn_dict)
    mutate(raw)

    with pytest.raises(SpecError) as caught:
        load_spec(write_spec(tmp_path, raw))

    assert str(caught.value).startswith(f"broken.yaml: {expected}")


def test_a_value_on_each_bound_is_accepted(tmp_path, churn_dict):
    raw = copy.deepcopy(churn_dict)
    raw["training"].update(n_trials=N_TRIALS_RANGE[1], window_days=MAX_WINDOW_DAYS, estimators=["dummy"])
    raw["gate"]["min_improvement"] = MIN_IMPROVEMENT_RANGE[1]
    raw["schedule"].update(timezone="Pacific/Kiritimati", start_date=str(START_DATE_RANGE[1]))
    assert load_spec(write_spec(tmp_path, raw)).training.n_trials == N_TRIALS_RANGE[1]

    raw["training"].update(window_days=raw["training"]["holdout_days"] + MIN_TRAINING_DAYS)
    raw["gate"]["min_improvement"] = MIN_IMPROVEMENT_RANGE[0]
    raw["schedule"]["start_date"] = str(START_DATE_RANGE[0])
    assert load_spec(write_spec(tmp_path, raw)).gate.min_improvement == MIN_IMPROVEMENT_RANGE[0]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda raw: raw["label"].update(positive="yes"), "label.positive: 'yes' is not among the allowed"),
        (
            lambda raw: raw["drift"].update(psi_alert=0.01),
            "drift.psi_alert: must be at least psi_warn (0.05)",
        ),
        (lambda raw: raw["sources"][0].pop("table"), "sources.0.table: a sql source needs it"),
    ],
)
def test_an_error_found_across_keys_names_its_own_key(tmp_path, churn_dict, mutate, expected):
    """A check of a whole model (the label against its column) used to report "(top level)"."""
    raw = copy.deepcopy(churn_dict)
    mutate(raw)

    with pytest.raises(SpecError) as caught:
        load_spec(write_spec(tmp_path, raw))

    assert str(caught.value).startswith(f"broken.yaml: {expected}")
    assert "top level" not in str(caught.value)


def test_a_file_that_is_not_a_mapping_is_refused(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- just\n- a list\n")

    with pytest.raises(SpecError, match=r"^list\.yaml: a spec is a mapping"):
        load_spec(path)


def test_load_specs_reads_every_file_of_a_folder(tmp_path, churn_dict):
    shutil.copy(CHURN_YAML, tmp_path / "churn.yaml")
    write_spec(tmp_path, {**churn_dict, "name": "upsell"}, "upsell.yaml")

    folder = load_specs(tmp_path)
    assert [s.name for s in folder.specs] == ["churn", "upsell"]
    assert folder.errors == []
    assert folder.files == {"churn": "churn.yaml", "upsell": "upsell.yaml"}


def test_load_specs_refuses_both_files_claiming_one_name_and_keeps_the_others(tmp_path, churn_dict):
    shutil.copy(CHURN_YAML, tmp_path / "churn.yaml")
    write_spec(tmp_path, churn_dict, "churn_copy.yaml")
    write_spec(tmp_path, {**churn_dict, "name": "upsell"}, "upsell.yaml")

    folder = load_specs(tmp_path)

    assert [s.name for s in folder.specs] == ["upsell"]
    [error] = folder.errors
    message = str(error)
    assert "'churn'" in message
    assert "churn.yaml" in message
    assert "churn_copy.yaml" in message


def test_one_bad_spec_file_does_not_hide_the_others(tmp_path, churn_dict):
    """Finding 4: the first bad file used to raise, and every use case's DAGs disappeared."""
    write_spec(tmp_path, {**churn_dict, "name": "alpha", "colour": "red"}, "alpha.yaml")
    shutil.copy(CHURN_YAML, tmp_path / "churn.yaml")
    (tmp_path / "garbled.yaml").write_text("name: [unclosed\n")

    folder = load_specs(tmp_path)

    assert [s.name for s in folder.specs] == ["churn"]
    assert [str(e).split(":")[0] for e in folder.errors] == ["alpha.yaml", "garbled.yaml"]
    assert "colour" in str(folder.errors[0])


def test_get_spec_for_an_unknown_use_case_names_it(tmp_path):
    with pytest.raises(SpecError, match="'fraud'"):
        get_spec("fraud", tmp_path)


def test_get_spec_finds_a_use_case_by_the_name_inside_its_file(tmp_path, churn_dict):
    write_spec(tmp_path, {**churn_dict, "name": "bank_marketing"}, "bank.yaml")
    (tmp_path / "other.yaml").write_text("name: [not, valid")  # another file's error is not ours

    assert get_spec("bank_marketing", tmp_path).name == "bank_marketing"
    with pytest.raises(SpecError, match="no use case named 'bank'"):
        get_spec("bank", tmp_path)


def integer_label(churn_dict: dict, positive) -> dict:
    raw = copy.deepcopy(churn_dict)
    raw["columns"]["Churn"] = {"type": "integer", "allowed": [0, 1]}
    raw["label"] = {"column": "Churn", "positive": positive}
    return raw


@pytest.mark.parametrize(
    ("column", "positive"),
    [({"type": "integer", "allowed": [0, 1]}, 1), ({"type": "boolean"}, True), ({"type": "string"}, "Yes")],
)
def test_the_positive_label_is_written_as_the_column_holds_it(tmp_path, churn_dict, column, positive):
    raw = copy.deepcopy(churn_dict)
    raw["columns"]["Churn"] = column
    raw["label"] = {"column": "Churn", "positive": positive}

    label = load_spec(write_spec(tmp_path, raw)).label

    assert label.positive == positive and type(label.positive) is type(positive)


@pytest.mark.parametrize(
    ("positive", "problem"),
    [
        ("1", r"label.positive: '1' is not a value of the integer column 'Churn' \(write it as .* 1\)"),
        (True, r"label.positive: True is not a value of the integer column 'Churn'"),
        (2, r"label.positive: 2 is not among the allowed values \[0, 1\]"),
    ],
)
def test_a_positive_label_of_the_wrong_type_is_refused(tmp_path, churn_dict, positive, problem):
    with pytest.raises(SpecError, match=rf"broken.yaml: .*{problem}"):
        load_spec(write_spec(tmp_path, integer_label(churn_dict, positive)))


def test_the_label_compares_after_the_columns_type():
    import pandas as pd

    from include.training.preprocess import split_xy
    from include.usecases.spec import UseCase

    raw = yaml.safe_load(CHURN_YAML.read_text())
    raw["columns"]["Churn"] = {"type": "integer", "allowed": [0, 1]}
    raw["label"] = {"column": "Churn", "positive": 1}
    spec = UseCase.model_validate(raw)
    frame = pd.DataFrame({name: [None, None, None] for name in spec.features.all})
    frame["Churn"] = pd.array([1, 0, 1], dtype="Int64")

    _, y = split_xy(frame, spec)

    assert y.tolist() == [1, 0, 1]


@pytest.mark.parametrize(
    ("prefix", "problem"),
    [
        ("../../../../tmp/x/ds={ds}/", "`..` segment"),
        ("billing/../../ds={ds}/", "`..` segment"),
        ("billing/./ds={ds}/", "`.` or `..`"),
        ("billing//ds={ds}/", "empty"),
        ("/etc/ds={ds}/", "absolute"),
        ("~/ds={ds}/", "absolute"),
        ("billing\\..\\..\\ds={ds}\\", "backslash"),
        ("C:/billing/ds={ds}/", "drive or URL scheme"),
        ("s3://other-bucket/ds={ds}/", "drive or URL scheme"),
        ("billing/ds={ds}/\x00", "control character"),
        ("billing/{0}/ds={ds}/", "braces other than {ds}"),
    ],
)
def test_a_files_prefix_outside_the_store_is_refused_naming_the_file_and_key(
    tmp_path, churn_dict, prefix: str, problem: str
):
    raw = copy.deepcopy(churn_dict)
    raw["sources"][1]["prefix"] = prefix
    path = write_spec(tmp_path, raw)

    with pytest.raises(SpecError) as caught:
        load_spec(path)

    message = str(caught.value)
    assert message.startswith("broken.yaml: sources.1.prefix: ")
    assert "`prefix`" in message and problem in message


def test_a_declared_one_vs_rest_cut_of_a_three_valued_label_loads(tmp_path, churn_dict):
    raw = copy.deepcopy(churn_dict)
    raw["columns"]["Churn"]["allowed"] = ["Yes", "No", "Maybe"]
    raw["label"]["one_vs_rest"] = True
    assert load_spec(write_spec(tmp_path, raw)).label.one_vs_rest


def _as_task(raw: dict, task: str, label: dict, gate: dict) -> dict:
    raw = copy.deepcopy(raw)
    raw["columns"]["Price"] = {"type": "float", "nullable": False, "min": 0}
    raw["sources"][1]["columns"] = [*raw["sources"][1]["columns"], "Price"]
    raw["columns"]["Tier"] = {"type": "string", "nullable": False, "allowed": ["a", "b", "c"]}
    raw["sources"][1]["columns"] = [*raw["sources"][1]["columns"], "Tier"]
    raw["training"].pop("estimators")
    raw["outcomes"]["source"]["columns"] = [
        raw["entity_id"],
        label["column"],
    ]  # the task's label arrives later
    return {**raw, "task": task, "label": label, "gate": gate}


@pytest.mark.parametrize(
    ("task", "label", "gate", "expected"),
    [
        (
            "regression",
            {"column": "Price", "positive": 1},
            {"ceiling": 9.0},
            "label.positive: is for a binary task",
        ),
        ("regression", {"column": "Tier"}, {"ceiling": 9.0}, "label.column: 'Tier' is a string column"),
        ("regression", {"column": "Price"}, {"floor": 0.5, "ceiling": 9.0}, "gate.ceiling: give `floor` or"),
        (
            "regression",
            {"column": "Price"},
            {"primary": "roc_auc", "floor": 0.5},
            "gate.primary: 'roc_auc' is not a regression metric",
        ),
        ("regression", {"column": "Price"}, {}, "gate.ceiling: required: rmse is lower-is-better"),
        (
            "multiclass",
            {"column": "Tier", "classes": ["a", "b"]},
            {"ceiling": 1.0},
            "label.classes: must be at least three",
        ),
        (
            "multiclass",
            {"column": "Tier", "classes": ["a", "b", "z"]},
            {"ceiling": 1.0},
            "['z'] are not among the allowed",
        ),
        (
            "multiclass",
            {"column": "Tier"},
            {"primary": "macro_f1", "ceiling": 0.5},
            "gate.ceiling: not for macro_f1",
        ),
        (
            "binary",
            {"column": "Churn"},
            {"floor": 0.7, "guardrails": {"accuracy": 0.02}},
            "label.positive: required",
        ),
    ],
)
def test_a_task_whose_label_or_gate_does_not_fit_names_the_key(
    tmp_path, churn_dict, task, label, gate, expected
):
    raw = _as_task(churn_dict, task, label, gate)
    with pytest.raises(SpecError, match=re.escape(expected)):
        load_spec(write_spec(tmp_path, raw))


@pytest.mark.parametrize(
    ("task", "label", "gate", "primary"),
    [
        ("regression", {"column": "Price", "log_scale": True}, {"ceiling": 50.0}, "rmse"),
        ("multiclass", {"column": "Tier"}, {"ceiling": 1.0}, "log_loss"),
        (
            "multiclass",
            {"column": "Tier", "classes": ["c", "b", "a"]},
            {"primary": "macro_f1", "floor": 0.5},
            "macro_f1",
        ),
    ],
)
def test_regression_and_multiclass_specs_load_with_their_primary_metric(
    tmp_path, churn_dict, task, label, gate, primary
):
    spec = load_spec(write_spec(tmp_path, _as_task(churn_dict, task, label, gate)))
    assert (spec.task, spec.gate.primary) == (task, primary)
