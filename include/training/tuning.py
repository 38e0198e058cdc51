"""Cross-validated trials over time, the choice of the best one, and the final fit.

Each trial is scored on out-of-fold predictions from `time_series_folds` over the training part,
so tuning never sees the holdout. The decision threshold is chosen on those predictions too.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from include.registry.model_files import FittedModel
from include.training.estimators import Trial, build_model
from include.training.metrics import choose_threshold, evaluate_outputs
from include.training.preprocess import split_xy
from include.training.split import DATE_COLUMN, days_until_every_class, time_series_folds
from include.usecases.spec import UseCase, direction

logger = logging.getLogger(__name__)

# Trials already run in parallel, one mapped Airflow task each; BLAS and OpenMP threads inside a fit
# would oversubscribe the cores (OpenMP spin-waits make a busy machine many times slower).
THREADS_PER_FIT = 1


@dataclass(frozen=True)
class TrialResult:
    """A trial's cross-validated figures.

    Attributes:
        trial: the family and parameters tried.
        primary: the metric that ranks trials (the gate's primary).
        primary_mean: mean of `primary` over the folds.
        primary_std: its standard deviation over the folds.
        metrics: every metric on the pooled out-of-fold predictions, at `threshold`.
        threshold: the F1-maximising threshold on the out-of-fold predictions.
        duration_seconds: wall time of the cross-validation.
    """

    trial: Trial
    primary: str
    primary_mean: float
    primary_std: float
    metrics: Mapping[str, float]
    threshold: float
    duration_seconds: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (the XCom form)."""
        return {
            "trial": self.trial.to_dict(),
            "primary": self.primary,
            "primary_mean": self.primary_mean,
            "primary_std": self.primary_std,
            "metrics": dict(self.metrics),
            "threshold": self.threshold,
            "duration_seconds": self.duration_seconds,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialResult:
        """The result `to_dict` described."""
        return cls(**{**data, "trial": Trial.from_dict(data["trial"]), "metrics": dict(data["metrics"])})


def trial_rows(spec: UseCase, train_frame: pd.DataFrame) -> pd.DataFrame:
    """The rows a trial is cross-validated on: all of the training part, or, beyond
    `training.max_trial_rows`, a sample of that many seeded by `training.random_state` (the same
    sample for every trial), in their original order so the folds stay in time."""
    cap = spec.training.max_trial_rows
    if cap is None or len(train_frame) <= cap:
        return train_frame
    rng = np.random.default_rng(spec.training.random_state)
    keep = np.sort(rng.choice(len(train_frame), cap, replace=False))
    return train_frame.iloc[keep]


def _fold_predictions(
    spec: UseCase, trial: Trial, train_frame: pd.DataFrame, classes: Sequence[object] | None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Labels and out-of-fold outputs (`FittedModel.outputs`) of each fold's validation rows."""
    if DATE_COLUMN not in train_frame.columns:
        raise ValueError(f"the training frame has no date column {DATE_COLUMN!r}")
    frame = trial_rows(spec, train_frame)
    X, y = split_xy(frame, spec, classes)
    # A classifier's folds train on every class seen, where the days allow (a rare class may come late).
    covering = 1 if spec.task == "regression" else days_until_every_class(frame[DATE_COLUMN], y.to_numpy())
    folds = time_series_folds(frame[DATE_COLUMN], spec.training.cv_folds, first_train_days=covering)
    predictions = []
    for n, (train_rows, valid_rows) in enumerate(folds):
        _check_fold_classes(spec, trial, n, y.iloc[train_rows], classes)
        with threadpool_limits(limits=THREADS_PER_FIT):
            model = build_model(spec, trial.family, trial.params).fit(X.iloc[train_rows], y.iloc[train_rows])
            fitted = FittedModel(model, 0.5, trial, _task_metadata(spec, classes))
            outputs = fitted.outputs(X.iloc[valid_rows])
        predictions.append((y.to_numpy()[valid_rows], outputs))
    return predictions


def _check_fold_classes(
    spec: UseCase, trial: Trial, n: int, y: pd.Series, classes: Sequence[object] | None
) -> None:
    """A binary fold needs both classes; a multiclass fold at least two, the missing ones named."""
    if spec.task == "regression":
        return
    seen = sorted(y.unique().tolist())
    if spec.task == "binary" and seen != [0, 1]:
        raise ValueError(
            f"{trial.trial_id}, fold {n}: the training rows hold only the class(es) {seen}; "
            "both 0 and 1 are needed"
        )
    if spec.task == "multiclass":
        if len(seen) < 2:
            raise ValueError(f"{trial.trial_id}, fold {n}: the training rows hold one class only")
        missing = [c for i, c in enumerate(classes or ()) if i not in seen]
        if missing:
            logger.warning(
                "%s, fold %d: no training row of class(es) %s before this fold: the class is first seen "
                "too late for every fold to train on it; the fold's model gives it probability 0",
                trial.trial_id,
                n,
                missing,
            )


def _task_metadata(spec: UseCase, classes: Sequence[object] | None) -> dict[str, Any]:
    """What a model file records of its task: the task, and a multiclass model's class order."""
    return {"task": spec.task, **({"classes": list(classes)} if classes is not None else {})}


def _pooled(predictions: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([y for y, _ in predictions]), np.concatenate([p for _, p in predictions])


def run_trial(
    spec: UseCase, trial: Trial, train_frame: pd.DataFrame, classes: Sequence[object] | None = None
) -> TrialResult:
    """Cross-validate one trial over time on the training part (`trial_rows` of it).

    Binary: the threshold is chosen on the pooled out-of-fold predictions; the per-fold scores of
    the primary metric (for its mean and standard deviation) and the pooled metrics all use it.
    The other tasks have no threshold (0.5 is recorded, unused).

    Raises:
        ValueError: for a missing column, too few days for the folds, or a fold short of classes.
    """
    started = time.perf_counter()
    predictions = _fold_predictions(spec, trial, train_frame, classes)
    y_oof, out_oof = _pooled(predictions)
    threshold = choose_threshold(y_oof, out_oof) if spec.task == "binary" else 0.5
    primary = spec.gate.primary
    scores = [evaluate_outputs(spec.task, y, out, threshold)[primary] for y, out in predictions]
    result = TrialResult(
        trial=trial,
        primary=primary,
        primary_mean=float(np.nanmean(scores)) if not np.isnan(scores).all() else float("nan"),
        primary_std=float(np.nanstd(scores)) if not np.isnan(scores).all() else float("nan"),
        metrics=evaluate_outputs(spec.task, y_oof, out_oof, threshold),
        threshold=threshold,
        duration_seconds=round(time.perf_counter() - started, 3),
    )
    logger.info(
        "Trial %s: %s %.4f ± %.4f over %d folds (%d out-of-fold rows) in %.1f s",
        trial.trial_id,
        primary,
        result.primary_mean,
        result.primary_std,
        len(scores),
        len(y_oof),
        result.duration_seconds,
    )
    return result


def best_trial(results: Iterable[TrialResult], primary: str) -> TrialResult:
    """The result with the best mean `primary` (highest; lowest for log loss), ties to the smallest trial_id.

    Raises:
        ValueError: when no result has a finite mean of `primary`.
    """
    results = list(results)
    for result in results:
        if result.primary != primary:
            raise ValueError(f"trial {result.trial.trial_id} was ranked by {result.primary}, not {primary}")
    ranked = [r for r in results if math.isfinite(r.primary_mean)]
    if not ranked:
        raise ValueError(f"none of the {len(results)} trial result(s) has a finite mean {primary}")
    best = min(ranked, key=lambda r: (-direction(primary) * r.primary_mean, r.trial.trial_id))
    logger.info(
        "Best of %d trials: %s with %s %.4f", len(results), best.trial.trial_id, primary, best.primary_mean
    )
    return best


def fit_final(
    spec: UseCase,
    trial: Trial,
    train_frame: pd.DataFrame,
    threshold: float,
    classes: Sequence[object] | None = None,
) -> FittedModel:
    """Refit `trial` on the whole training part; `threshold` is the one its cross-validation chose;
    a multiclass model reports `classes` in that order.

    Raises:
        ValueError: for a missing column or a single-class label.
    """
    started = time.perf_counter()
    X, y = split_xy(train_frame, spec, classes)
    with threadpool_limits(limits=THREADS_PER_FIT):
        pipeline = build_model(spec, trial.family, trial.params).fit(X, y)
    logger.info(
        "Fitted %s on %d rows (threshold %.4f) in %.1f s",
        trial.trial_id,
        len(X),
        threshold,
        time.perf_counter() - started,
    )
    return FittedModel(pipeline, threshold, trial, _task_metadata(spec, classes))
