"""The compiled fast path against the fitted pipeline it replaces, and when it is not used."""

from __future__ import annotations

import copy
import datetime as dt

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from include.registry.read_models import describe
from include.serving.fast import CompileError, check_against, compile_pipeline
from include.serving.rows import probe_rows, row_model, rows_to_frame
from include.serving.service import Served, build_served
from include.training.estimators import build_model
from include.training.preprocess import split_xy
from include.usecases.spec import UseCase
from tests.unit.serving.conftest import FAMILIES, as_request_rows, version_model
from tests.unit.training.marketing import contact_days, with_contact_days


@pytest.mark.parametrize("family", FAMILIES)
def test_the_fast_path_builds_the_pipelines_matrix_and_scores(spec: UseCase, pipelines, request_rows, family):
    pipeline = pipelines[family]
    fast = compile_pipeline(pipeline)
    frame = rows_to_frame(request_rows, spec)
    np.testing.assert_array_equal(fast.features(request_rows), pipeline[:-1].transform(frame))
    expected = pipeline.predict_proba(frame)[:, 1]
    assert np.max(np.abs(fast.predict_proba(request_rows) - expected)) <= 1e-12
    # One row at a time, as most requests come.
    for n in (0, 1, 500):
        single = fast.predict_proba(request_rows[n : n + 1])
        assert single[0] == pytest.approx(expected[n], abs=1e-12)
    assert check_against(fast, pipeline, rows_to_frame(probe_rows(spec), spec), probe_rows(spec)) <= 1e-12


def served_by(spec: UseCase, pipeline, engine: str) -> Served:
    """`pipeline` as the service would serve it on `engine` (`auto`, `fast` or `sklearn`)."""
    model = version_model(pipeline)
    return build_served(spec, model, describe(model.version, None, spec.train_dag_id), engine, None)


@pytest.mark.parametrize("family", ["random_forest", "logistic_regression"])
def test_a_compiled_estimator_gives_the_pipelines_scores_to_the_last_bit(
    spec, pipelines, request_rows, family
):
    """A forest walked all at once, a logistic regression as one product without scikit-learn's checks
    (for the same rows: a product's sums may group differently for another number of rows)."""
    pipeline = pipelines[family]
    fast = compile_pipeline(pipeline)
    assert fast.compiled is not None
    for rows in (request_rows, request_rows[7:8]):
        expected = pipeline.predict_proba(rows_to_frame(rows, spec))[:, 1]
        np.testing.assert_array_equal(fast.predict_proba(rows), expected)


def test_an_unknown_category_sets_no_column_as_the_encoder_does(spec: UseCase, pipelines, request_rows):
    pipeline = pipelines["logistic_regression"]
    row = {**request_rows[0], "Contract": "Weekly"}  # past validation only in this test
    frame = rows_to_frame([request_rows[0]], spec).astype({"Contract": "object"})
    frame.loc[0, "Contract"] = "Weekly"
    np.testing.assert_array_equal(compile_pipeline(pipeline).features([row]), pipeline[:-1].transform(frame))


def test_a_pipeline_it_does_not_know_is_not_compiled(spec: UseCase, telco):
    encoder = ColumnTransformer([("onehot", OneHotEncoder(handle_unknown="ignore"), ["Contract"])])
    other = Pipeline([("preprocess", encoder), ("model", LogisticRegression())])
    other.fit(telco[["Contract"]], telco["Churn"] == "Yes")
    with pytest.raises(CompileError, match="no fast form for the 'onehot' group"):
        compile_pipeline(other)


def test_auto_falls_back_to_the_pipeline_and_fast_insists(spec: UseCase, pipelines, request_rows, telco):
    encoder = ColumnTransformer([("onehot", OneHotEncoder(handle_unknown="ignore"), ["Contract"])])
    other = Pipeline([("preprocess", encoder), ("model", LogisticRegression())])
    other.fit(telco[list(spec.features.all)], telco["Churn"] == "Yes")
    served = served_by(spec, other, "auto")
    assert served.engine == "sklearn"
    expected = other.predict_proba(rows_to_frame(request_rows[:5], spec))[:, 1]
    np.testing.assert_array_equal(served.scorer(request_rows[:5]), expected)
    with pytest.raises(CompileError):
        served_by(spec, other, "fast")
    assert served_by(spec, pipelines["dummy"], "auto").engine == "fast"
    assert served_by(spec, pipelines["dummy"], "sklearn").engine == "sklearn"


def with_date_feature(spec: UseCase) -> UseCase:
    """The churn spec plus a `signup` date feature: a use case the fast path does not compile."""
    raw = spec.model_dump()
    raw["columns"]["signup"] = {"type": "date", "nullable": True}
    raw["sources"][0]["columns"] = [*raw["sources"][0]["columns"], "signup"]
    raw["features"]["datetime"] = ["signup"]
    return UseCase.model_validate(raw)


def test_a_date_feature_is_scored_by_the_pipeline_as_batch_would(spec: UseCase, telco, request_rows):
    dated = with_date_feature(spec)
    frame = telco.head(600).assign(
        signup=pd.Timestamp("2024-01-01") + pd.to_timedelta(telco.index[:600], "D")
    )
    X, y = split_xy(frame, dated)
    pipeline = build_model(dated, "logistic_regression", {"C": 1.0}).fit(X, y)
    with pytest.raises(CompileError, match="no fast form for the 'datetime' group"):
        compile_pipeline(pipeline)
    served = served_by(dated, pipeline, "auto")
    assert served.engine == "sklearn"
    rows = [
        row_model(dated).model_validate({**row, "signup": day}).__dict__
        for row, day in zip(request_rows[:3], ["2024-02-29", None, "2025-01-31"], strict=True)
    ]
    batch_frame = pd.DataFrame(rows)[list(dated.features.all)]
    batch_frame["signup"] = pd.to_datetime(batch_frame["signup"])
    expected = pipeline.predict_proba(batch_frame)[:, 1]
    np.testing.assert_allclose(served.scorer(rows), expected, rtol=0, atol=1e-12)
    assert rows[0]["signup"] == dt.date(2024, 2, 29)


def test_a_blank_total_is_flagged_by_the_fast_path_as_by_the_pipeline(spec: UseCase, pipelines, request_rows):
    """The churn pipelines had blank TotalCharges in training, so they hold `TotalCharges_missing`."""
    pipeline = pipelines["logistic_regression"]
    names = list(pipeline[:-1].get_feature_names_out())
    assert names[-1] == "numeric_missing__TotalCharges_missing"
    fast = compile_pipeline(pipeline)
    flags = fast.features(request_rows)[:, -1]
    blanks = [row["TotalCharges"] is None for row in request_rows]
    assert sum(blanks) >= 11  # the 11 blank rows, and any in the tail
    np.testing.assert_array_equal(flags, np.asarray(blanks, dtype=float))
    assert any(row["TotalCharges"] is None for row in probe_rows(spec))  # the self-check sees a null


def test_a_pipeline_trained_without_missing_values_has_no_indicator_and_compiles(spec, telco, request_rows):
    complete = telco[telco["TotalCharges"].str.strip() != ""].head(800)
    pipeline = build_model(spec, "logistic_regression", {"C": 1.0}).fit(*split_xy(complete, spec))
    assert not any(name.endswith("_missing") for name in pipeline[:-1].get_feature_names_out())
    fast = compile_pipeline(pipeline)
    frame = rows_to_frame(request_rows, spec)
    np.testing.assert_array_equal(fast.features(request_rows), pipeline[:-1].transform(frame))
    assert served_by(spec, pipeline, "auto").engine == "fast"


def test_a_missing_indicator_built_otherwise_is_not_compiled(pipelines):
    pipeline = copy.deepcopy(pipelines["dummy"])
    indicator = pipeline[0].named_transformers_["numeric_missing"].named_steps["indicate"]
    indicator.error_on_new = True  # would raise on a column newly missing at scoring
    with pytest.raises(CompileError, match="a missing indicator other than build_preprocessor's"):
        compile_pipeline(pipeline)


def test_a_spec_with_the_new_grammar_is_served_by_the_pipeline_as_batch_would(spec: UseCase, telco):
    """Derived features (`d >= 0`, `where(...)`) and their indicators have no fast form: the
    service falls back to scikit-learn, with the pipeline's scores."""
    marketing = with_contact_days(spec)
    frame = contact_days(telco.head(600))
    pipeline = build_model(marketing, "logistic_regression", {"C": 1.0}).fit(*split_xy(frame, marketing))
    assert "derived_missing__contacted_missing" in pipeline[:-1].get_feature_names_out()
    with pytest.raises(CompileError, match="no fast form for the 'derived' group"):
        compile_pipeline(pipeline)
    served = served_by(marketing, pipeline, "auto")
    assert served.engine == "sklearn"
    with pytest.raises(CompileError):
        served_by(marketing, pipeline, "fast")
    rows = [
        {**row, "d": None if pd.isna(d) else int(d)}
        for row, d in zip(as_request_rows(frame, spec), frame["d"], strict=True)
    ]
    assert {None, -1, 0} <= {row["d"] for row in rows}  # unknown, never contacted, contacted today
    expected = pipeline.predict_proba(rows_to_frame(rows, marketing))[:, 1]
    np.testing.assert_array_equal(served.scorer(rows), expected)
    batch = pipeline.predict_proba(frame[list(marketing.features.all)])[:, 1]
    np.testing.assert_allclose(served.scorer(rows), batch, rtol=0, atol=1e-12)
