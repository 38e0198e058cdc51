"""A matured day judged for each task: the stored outputs against the matched outcomes give the
task's metrics as scikit-learn computes them, with the version's holdout figures beside them."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, log_loss, mean_absolute_error, root_mean_squared_error

from include.outcomes.task import judge_day
from include.registry.registry import ModelVersion
from include.usecases.spec import Outcomes, Source, UseCase, load_spec
from tools.examples.seed import example_spec
from tools.testkit import version_of_day

DAY = dt.date(2025, 2, 1)


def with_outcomes(spec: UseCase) -> UseCase:
    source = Source(
        name="outcomes",
        kind="sql",
        conn_id="outcomes_db",
        table="observed",
        date_column="observed_date",
        columns=(spec.entity_id, spec.label.column),
    )
    return spec.model_copy(update={"outcomes": Outcomes(source=source, maturity_days=3, resamples=200)})


def version(spec: UseCase, metrics: dict, curves: dict | None = None) -> ModelVersion:
    new = version_of_day(
        spec.name, "t", DAY, family="x", artifact_uri="file:///m", sha256="0" * 64, metrics=metrics
    )
    return ModelVersion(**{**dataclasses.asdict(new), "curves": curves}, version=4)


def frames(ids: list[str], scores, observed_values, probabilities=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    predictions = pd.DataFrame(
        {"entity_id": ids, "model_version": 4, "score": scores, "class_probabilities": probabilities}
    )
    # Each entity's outcome twice: the earliest one observed on or after the scored day judges it.
    observed = pd.DataFrame(
        {
            "entity_id": ids * 2,
            "observed_ds": [DAY + dt.timedelta(days=2)] * len(ids) + [DAY + dt.timedelta(days=5)] * len(ids),
            "outcome": list(observed_values) + ["later"] * len(ids),
        }
    )
    return predictions, observed


def test_a_regression_day_gives_rmse_and_mae_against_its_expectation():
    spec = with_outcomes(load_spec(example_spec("hotel_rates")))
    rng = np.random.default_rng(1)
    ids = [f"B{n:05d}" for n in range(300)]
    actual = rng.uniform(50, 250, 300)
    predicted = actual + rng.normal(0, 20, 300)
    predictions, observed = frames(ids, predicted, actual)
    observed.loc[300:, "outcome"] = 1e6  # the later observation: never the one that judges
    figures = judge_day(spec, version(spec, {"rmse": 18.0, "mae": 15.0}), predictions, observed, DAY)
    assert figures["rows_matched"] == 300 and figures["primary_metric"] == "rmse"
    rmse = figures["metrics"]["rmse"]
    assert rmse["estimate"] == pytest.approx(root_mean_squared_error(actual, predicted))
    assert figures["metrics"]["mae"]["estimate"] == pytest.approx(mean_absolute_error(actual, predicted))
    assert rmse["lower"] < rmse["estimate"] < rmse["upper"]
    assert figures["expected"]["rmse"] == 18.0
    assert figures["decayed"] == (rmse["lower"] > 18.0)  # a loss decays upwards


def test_a_multiclass_day_reads_each_rows_class_probabilities_in_the_versions_order():
    spec = with_outcomes(load_spec(example_spec("hpc_jobs")))
    classes = ["VF", "F", "M", "L"]
    rng = np.random.default_rng(2)
    truth = rng.integers(0, 4, 400)
    proba = rng.dirichlet(np.ones(4), 400)
    proba[np.arange(400), truth] += 1.5
    proba /= proba.sum(axis=1, keepdims=True)
    ids = [f"J{n:05d}" for n in range(400)]
    stored = [json.dumps(row.tolist()) for row in proba]
    predictions, observed = frames(ids, proba.max(axis=1), [classes[t] for t in truth], stored)
    curves = {"kind": "multiclass", "classes": classes}
    figures = judge_day(
        spec, version(spec, {"log_loss": 0.9, "macro_f1": 0.6}, curves), predictions, observed, DAY
    )
    assert figures["rows_matched"] == 400
    assert figures["metrics"]["log_loss"]["estimate"] == pytest.approx(
        log_loss(truth, proba, labels=range(4))
    )
    assert figures["metrics"]["macro_f1"]["estimate"] == pytest.approx(
        f1_score(truth, proba.argmax(axis=1), average="macro")
    )
    assert figures["decayed"] is False  # far better than its 0.9 holdout log loss


def test_a_day_whose_outcomes_have_not_arrived_is_recorded_with_no_figures():
    spec = with_outcomes(load_spec(example_spec("hotel_rates")))
    predictions, observed = frames(["B00001"], [100.0], [120.0])
    figures = judge_day(spec, version(spec, {"rmse": 18.0}), predictions, observed.iloc[:0], DAY)
    assert (figures["rows_scored"], figures["rows_matched"], figures["metrics"]) == (1, 0, {})
    assert figures["decayed"] is False
