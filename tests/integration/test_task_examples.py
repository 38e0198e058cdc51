"""The regression and multiclass worked examples on real data, onboarded by their spec files alone:
seeding, ingest → train → score through `dag.test()`, and the champion against a plain scikit-learn
model fitted in the test on the same split (within 2 %).

hotel_rates: a booking's average daily rate (RMSE); hpc_jobs: a job's run-time class (log loss and
macro F1). Every day but the last of the window is ingested by the stage function, the last one by
the ingest DAG; the day after it is scored by the scoring DAG.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.metrics import f1_score, log_loss, root_mean_squared_error
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

from include.ingest.pipeline import ingest_partition, read_sources
from include.io.lake import RAW_ZONE, partition_key, read_frame, training_key
from include.io.stores import LocalStore
from include.monitoring.reference import PREDICTION
from include.partition import Partition
from include.platform.queries import drift_of
from include.platform.schema import upgrade
from include.platform.tables import predictions
from include.registry.model_files import load_version_model
from include.registry.registry import Registry
from include.usecases.spec import UseCase, get_spec
from tests.conftest import connection_of, run_dag, task_states
from tools.examples.seed import example_spec, seed

pytestmark = pytest.mark.integration

# (as of, the day scored after it, window_days): hotel bookings arrive from 2016-07-02; the jobs
# are spread over 2025-01-01 .. 03-01.
DAYS = {
    "hotel_rates": (dt.date(2016, 9, 29), dt.date(2016, 9, 30), 90),
    "hpc_jobs": (dt.date(2025, 2, 27), dt.date(2025, 2, 28), 58),
}
# The run's form: hotel_rates searches 2 parameter sets per family here (3 in its spec).
FORM = {"hotel_rates": {"n_trials": 2}, "hpc_jobs": {}}


@pytest.fixture(params=sorted(DAYS))
def example(request, airflow_db, tmp_path, monkeypatch):
    """The example's spec alone in a spec folder, its source seeded, the window's days ingested."""
    name = request.param
    as_of, scored, window_days = DAYS[name]
    specs = tmp_path / "specs"
    specs.mkdir()
    shutil.copy(example_spec(name), specs / f"{name}.yaml")
    spec = get_spec(name, specs)
    source = sa.create_engine(f"sqlite:///{tmp_path / 'source.db'}")
    seed(name, source)
    platform = sa.create_engine(f"sqlite:///{tmp_path / 'platform.db'}")
    upgrade(platform)
    lake = LocalStore(tmp_path / "lake")
    monkeypatch.setenv("PLATFORM_SPEC_DIR", str(specs))
    monkeypatch.setenv(f"AIRFLOW_CONN_{spec.sources[0].conn_id.upper()}", connection_of(source))
    monkeypatch.setenv("AIRFLOW_CONN_PLATFORM_DB", connection_of(platform))
    monkeypatch.setenv(
        "AIRFLOW_CONN_PLATFORM_LAKE", json.dumps({"conn_type": "fs", "extra": {"path": str(lake.root)}})
    )
    from include.io.connections import engine_for

    engine_for.cache_clear()
    first = as_of - dt.timedelta(days=window_days - 1)
    for offset in range(window_days - 1):
        partition = Partition(first + dt.timedelta(days=offset))
        raw = read_sources(spec, partition, lambda _: source, None)
        ingest_partition(spec, partition, raw=raw, lake=lake, platform=platform, run_id="seed")
    yield spec, platform, lake, (as_of, scored, window_days)
    engine_for.cache_clear()
    platform.dispose()
    source.dispose()


def reference(spec: UseCase, train: pd.DataFrame):
    """A plain scikit-learn model on the same training part: gradient boosting with default settings,
    categorical columns ordinal-encoded."""
    categorical = list(spec.features.categorical)
    encode = ColumnTransformer(
        [
            (
                "categories",
                OrdinalEncoder(
                    handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1
                ),
                categorical,
            )
        ],
        remainder="passthrough",
    )
    model = HistGradientBoostingRegressor if spec.task == "regression" else HistGradientBoostingClassifier
    pipeline = Pipeline([("encode", encode), ("model", model(random_state=0))])
    features = list(spec.features.all)
    label = train[spec.label.column]
    return pipeline.fit(train[features].astype({c: "object" for c in categorical}), label), features


def test_the_example_trains_a_champion_near_the_reference_and_scores_a_day(example):
    spec, platform, lake, (as_of, scored, window_days) = example

    ingest = run_dag(spec.ingest_dag_id, as_of)
    assert ingest.state == "success", task_states(ingest)
    train = run_dag(spec.train_dag_id, as_of, {**FORM[spec.name], "window_days": window_days})
    assert train.state == "success", task_states(train)
    registry = Registry(platform)
    champion = registry.champion(spec.name)
    assert champion is not None, registry.versions(spec.name)

    assert_near_the_reference(spec, lake, as_of, champion.metrics)

    # The day after: ingested and scored by the DAGs, every prediction the champion's own.
    assert run_dag(spec.ingest_dag_id, scored).state == "success"
    score = run_dag(spec.score_dag_id, scored)
    assert score.state == "success", task_states(score)
    with platform.connect() as conn:
        rows = pd.DataFrame(
            conn.execute(sa.select(predictions).where(predictions.c.ds == scored)).mappings().all()
        ).sort_values("entity_id")
    day = read_frame(lake, partition_key(RAW_ZONE, spec.name, scored)).sort_values(spec.entity_id)
    assert rows["entity_id"].tolist() == day[spec.entity_id].tolist()
    assert set(rows["model_version"]) == {champion.version}
    outputs = load_version_model(lake, champion).model.outputs(day)
    if spec.task == "regression":
        np.testing.assert_allclose(rows["score"], outputs, rtol=1e-12)
        assert rows["predicted_label"].isna().all()
    else:
        stored = np.array([json.loads(p) for p in rows["class_probabilities"]])
        np.testing.assert_allclose(stored, outputs, atol=1e-12)
        assert rows["predicted_class"].tolist() == [spec.label.classes[i] for i in outputs.argmax(axis=1)]
        np.testing.assert_allclose(rows["score"], outputs.max(axis=1), atol=1e-12)

    # The model's own output is watched for drift beside the features, against the holdout's.
    measures = {m.feature: m for m in drift_of(platform, spec.name, scored)}
    assert PREDICTION in measures and set(spec.features.numeric) <= set(measures)
    assert measures[PREDICTION].rows == len(day)

    # The real-time service answers the same rows with the same figures (to 1e-9).
    answers = served(spec, platform, lake, day)
    assert [a["entity_id"] for a in answers] == day[spec.entity_id].tolist()
    assert {a["model_version"] for a in answers} == {champion.version}
    if spec.task == "regression":
        np.testing.assert_allclose([a["value"] for a in answers], outputs, rtol=1e-9)
    else:
        names = [str(c) for c in spec.label.classes]
        given = np.array([[a["probabilities"][c] for c in names] for a in answers])
        np.testing.assert_allclose(given, outputs, atol=1e-9)
        assert [a["predicted_class"] for a in answers] == rows["predicted_class"].tolist()


def assert_near_the_reference(spec: UseCase, lake: LocalStore, as_of: dt.date, metrics: dict) -> None:
    """The champion's holdout figures within 2 % of `reference`'s on the run's own split."""
    train_part = read_frame(lake, training_key(spec.name, as_of, "train"))
    holdout = read_frame(lake, training_key(spec.name, as_of, "holdout"))
    model, features = reference(spec, train_part)
    x = holdout[features].astype({c: "object" for c in spec.features.categorical})
    truth = holdout[spec.label.column]
    if spec.task == "regression":
        ours, theirs = metrics["rmse"], root_mean_squared_error(truth, model.predict(x))
        assert ours <= 1.02 * theirs, (ours, theirs)
    else:
        theirs_loss = log_loss(truth, model.predict_proba(x), labels=model.classes_)
        theirs_f1 = f1_score(truth, model.predict(x), labels=model.classes_, average="macro")
        assert metrics["log_loss"] <= 1.02 * theirs_loss, (metrics, theirs_loss)
        assert metrics["macro_f1"] >= theirs_f1 / 1.02, (metrics, theirs_f1)


def served(spec: UseCase, platform: sa.Engine, lake: LocalStore, day: pd.DataFrame) -> list[dict]:
    """The day's rows as the scoring service answers them, in their order."""
    from fastapi.testclient import TestClient

    from include.serving.app import create_app
    from include.serving.champion import ChampionSource
    from include.serving.rows import frame_to_rows
    from include.serving.service import ScoringService
    from include.serving.settings import ServingSettings

    service = ScoringService([spec], ChampionSource(platform, lake))
    with TestClient(create_app(service, "a-token", ServingSettings())) as client:
        answer = client.post(
            f"/v1/{spec.name}/score",
            json={"rows": frame_to_rows(day, spec)},
            headers={"Authorization": "Bearer a-token"},
        )
        schema = client.get("/openapi.json").json()
    assert answer.status_code == 200, answer.text
    kind = {"regression": "ValueResponse", "multiclass": "ClassResponse"}[spec.task]
    route = schema["paths"][f"/v1/{spec.name}/score"]["post"]["responses"]["200"]["content"]
    assert route["application/json"]["schema"]["$ref"].endswith(kind)
    return answer.json()["predictions"]
