"""Building one DAG per spec: a spec whose DAG raises is left out, named with its file and the cause."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import yaml

from include.dag_factory import build_dags
from include.usecases.spec import SPEC_DIR


def test_a_dag_that_raises_leaves_the_others_and_names_its_spec_file_and_the_cause(tmp_path):
    shutil.copy(SPEC_DIR / "churn.yaml", tmp_path / "churn.yaml")
    raw = yaml.safe_load((SPEC_DIR / "churn.yaml").read_text())
    (tmp_path / "upsell_v2.yaml").write_text(yaml.safe_dump({**raw, "name": "upsell"}))

    def build(spec):
        if spec.name == "upsell":
            try:
                raise ValueError("Invalid input for param window_days: 7 is less than the minimum of 9\n...")
            except ValueError as exc:
                raise ValueError("Dag 'upsell_train' is not allowed to define a Schedule") from exc
        return SimpleNamespace(dag_id=f"{spec.name}_train")

    namespace = {"__file__": "/opt/airflow/dags/train.py"}

    [error] = build_dags(namespace, build, tmp_path)

    assert namespace["churn_train"].dag_id == "churn_train"
    assert "upsell_train" not in namespace
    assert str(error) == (
        "upsell_v2.yaml: its DAG in train.py cannot be built: "
        "ValueError: Dag 'upsell_train' is not allowed to define a Schedule "
        "<- ValueError: Invalid input for param window_days: 7 is less than the minimum of 9"
    )
