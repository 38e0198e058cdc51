from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from include.registry.model_files import FittedModel
from include.training.estimators import Trial, sample_trials
from include.training.metrics import evaluate
from include.training.preprocess import split_xy
from include.training.split import DATE_COLUMN
from include.training.tuning import TrialResult, best_trial, fit_final, run_trial, trial_rows
from include.usecases.spec import ESTIMATORS, TASK_METRICS, UseCase

LOGISTIC = Trial("logistic_regression-0", "logistic_regression", {"C": 1.0})


@pytest.fixture(scope="module")
def train(churn_split: tuple[pd.DataFrame, pd.DataFrame]) -> pd.DataFrame:
    return churn_split[0]


@pytest.fixture(scope="module")
def logistic_result(spec: UseCase, train: pd.DataFrame) -> TrialResult:
    return run_trial(spec, LOGISTIC, train)


def result(trial_id: str, mean: float, primary: str = "roc_auc") -> TrialResult:
    family = trial_id.rsplit("-", 1)[0]
    return TrialResult(Trial(trial_id, family, {}), primary, mean, 0.01, {primary: mean}, 0.5, 1.0)


def test_run_trial_cross_validates_over_time(logistic_result: TrialResult) -> None:
    assert logistic_result.trial == LOGISTIC
    assert logistic_result.primary == "roc_auc"
    assert 0.8 < logistic_result.primary_mean < 0.9
    assert 0 < logistic_result.primary_std < 0.05
    assert set(logistic_result.metrics) == set(TASK_METRICS["binary"])
    assert 0 < logistic_result.threshold < 1
    assert logistic_result.duration_seconds > 0


def test_run_trial_is_deterministic(spec: UseCase, train: pd.DataFrame, logistic_result: TrialResult) -> None:
    again = run_trial(spec, LOGISTIC, train)
    assert again.primary_mean == logistic_result.primary_mean
    assert again.metrics == logistic_result.metrics
    assert again.threshold == logistic_result.threshold


def test_trial_result_round_trips_through_json(logistic_result: TrialResult) -> None:
    data = json.loads(json.dumps(logistic_result.to_dict()))
    assert TrialResult.from_dict(data) == logistic_result


@pytest.mark.parametrize("family", ESTIMATORS)
def test_every_family_runs_a_trial(spec: UseCase, train: pd.DataFrame, family: str) -> None:
    trial = sample_trials([family], 1, random_state=spec.training.random_state)[0]
    sample = train.iloc[::3]  # every day keeps rows, so the folds are the same days
    outcome = run_trial(spec, trial, sample)
    assert math.isfinite(outcome.primary_mean)
    expected = 0.5 if family == "dummy" else 0.75
    assert outcome.primary_mean >= expected


def test_run_trial_needs_the_date_column(spec: UseCase, train: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="no date column 'ds'"):
        run_trial(spec, LOGISTIC, train.drop(columns=DATE_COLUMN))


def test_run_trial_names_a_missing_feature(spec: UseCase, train: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="'tenure'"):
        run_trial(spec, LOGISTIC, train.drop(columns="tenure"))


def test_run_trial_refuses_a_single_class_label(spec: UseCase, train: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="only the class"):
        run_trial(spec, Trial("dummy-0", "dummy", {}), train.assign(Churn="No"))


def test_best_trial_takes_the_highest_mean() -> None:
    results = [result("a-0", 0.81), result("b-0", 0.84), result("c-0", 0.83)]
    assert best_trial(results, "roc_auc").trial.trial_id == "b-0"


def test_best_trial_breaks_ties_by_trial_id() -> None:
    results = [result("random_forest-1", 0.84), result("logistic_regression-2", 0.84), result("a-0", 0.80)]
    assert best_trial(results, "roc_auc").trial.trial_id == "logistic_regression-2"
    assert best_trial(reversed(results), "roc_auc").trial.trial_id == "logistic_regression-2"


def test_best_trial_takes_the_lowest_log_loss() -> None:
    results = [result("a-0", 0.45, "log_loss"), result("b-0", 0.40, "log_loss")]
    assert best_trial(results, "log_loss").trial.trial_id == "b-0"


def test_best_trial_skips_nan_and_refuses_nothing() -> None:
    assert best_trial([result("a-0", float("nan")), result("b-0", 0.6)], "roc_auc").trial.trial_id == "b-0"
    with pytest.raises(ValueError, match="none of the 1 trial result"):
        best_trial([result("a-0", float("nan"))], "roc_auc")
    with pytest.raises(ValueError, match="none of the 0"):
        best_trial([], "roc_auc")


def test_best_trial_refuses_results_ranked_by_another_metric() -> None:
    with pytest.raises(ValueError, match="ranked by accuracy, not roc_auc"):
        best_trial([result("a-0", 0.8, "accuracy")], "roc_auc")


def test_fit_final_refits_on_the_whole_training_part(
    spec: UseCase, train: pd.DataFrame, logistic_result: TrialResult
) -> None:
    model = fit_final(spec, LOGISTIC, train, logistic_result.threshold)
    assert isinstance(model, FittedModel)
    assert model.threshold == logistic_result.threshold
    scale = model.pipeline.named_steps["preprocess"].named_transformers_["numeric"].named_steps["scale"]
    assert scale.n_samples_seen_ == len(train)
    scores = model.predict_proba(train.head(50))
    assert ((scores >= 0) & (scores <= 1)).all()


def test_the_tuned_logistic_model_generalises_to_the_holdout(
    spec: UseCase, churn_split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    train, holdout = churn_split
    trials = sample_trials(["logistic_regression"], spec.training.n_trials, spec.training.random_state)
    best = best_trial([run_trial(spec, t, train) for t in trials], spec.gate.primary)
    model = fit_final(spec, best.trial, train, best.threshold)
    X, y = split_xy(holdout, spec)
    metrics = evaluate(y, model.predict_proba(X), model.threshold)
    assert metrics["roc_auc"] >= 0.83  # published results on this data: about 0.84-0.85
    assert metrics["accuracy"] >= 0.7


def capped(spec: UseCase, rows: int | None) -> UseCase:
    raw = spec.model_dump()
    raw["training"]["max_trial_rows"] = rows
    return UseCase.model_validate(raw)


def test_trials_use_every_row_up_to_the_cap(spec: UseCase, train: pd.DataFrame) -> None:
    assert trial_rows(spec, train) is train  # the churn window is far below the default cap
    assert trial_rows(capped(spec, None), train) is train
    assert trial_rows(capped(spec, len(train)), train) is train


def test_beyond_the_cap_trials_use_one_seeded_sample_in_time_order(
    spec: UseCase, train: pd.DataFrame
) -> None:
    small = capped(spec, 2000)
    sample = trial_rows(small, train)

    assert len(sample) == 2000 and sample.index.is_unique
    assert sample.index.isin(train.index).all()
    assert list(sample.index) == sorted(sample.index, key=list(train.index).index)
    assert sample.equals(trial_rows(small, train))
    on_cap, on_sample = run_trial(small, LOGISTIC, train), run_trial(spec, LOGISTIC, sample)
    assert (on_cap.primary_mean, on_cap.metrics, on_cap.threshold) == (
        on_sample.primary_mean,
        on_sample.metrics,
        on_sample.threshold,
    )


def test_a_cap_below_a_thousand_rows_is_refused(spec: UseCase) -> None:
    with pytest.raises(ValueError, match="max_trial_rows"):
        capped(spec, 10)


@pytest.mark.parametrize("first_day_of_rare_class, warned", [(20, False), (39, True)])
def test_multiclass_folds_train_on_a_late_class_where_the_days_allow(
    caplog: pytest.LogCaptureFixture, first_day_of_rare_class: int, warned: bool
) -> None:
    """A class first seen on day 20 of 40 is in every fold's training rows; one seen on the last
    day only cannot be, and the log says which class and why."""
    from include.training.preprocess import label_classes
    from include.usecases.spec import load_spec
    from tools.examples.seed import example_spec, hpc_rows

    spec = load_spec(example_spec("hpc_jobs"))
    frame = hpc_rows().sample(n=1200, random_state=0).reset_index(drop=True)
    label = frame[spec.label.column].astype(str)
    rare = label.value_counts().index[-1]
    days = pd.Series(range(len(frame))) % first_day_of_rare_class
    days[label == rare] = first_day_of_rare_class + days[label == rare] % (40 - first_day_of_rare_class)
    frame[DATE_COLUMN] = pd.Timestamp("2025-01-01") + pd.to_timedelta(days, unit="D")
    classes = label_classes(spec, frame)
    with caplog.at_level("WARNING", logger="include.training.tuning"):
        run_trial(spec, Trial("dummy-0", "dummy", {}), frame, classes)
    late = [r.getMessage() for r in caplog.records if "first seen too late" in r.getMessage()]
    assert bool(late) == warned
    if warned:
        assert rare in late[0]
