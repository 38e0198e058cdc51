"""The model families a use case may try, their hyper-parameter spaces, and the trials drawn from them.

A `Trial` is one family with one parameter set. Trials are plain JSON through `to_dict`/`from_dict`,
because they travel through XCom as the inputs of mapped training tasks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
from scipy.stats import loguniform
from sklearn.base import BaseEstimator
from sklearn.compose import TransformedTargetRegressor
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import ParameterSampler
from sklearn.pipeline import Pipeline

from include.registry.model_files import Trial
from include.training.preprocess import build_preprocessor
from include.usecases.spec import UseCase

logger = logging.getLogger(__name__)

# Fixed settings per family and task; the search spaces below vary the rest. n_jobs=1 because
# trials already run in parallel, one mapped Airflow task each.
_CLASSIFIERS: dict[str, Callable[..., BaseEstimator]] = {
    "logistic_regression": lambda **params: LogisticRegression(max_iter=2000, **params),
    "linear": lambda **params: LogisticRegression(max_iter=2000, **params),
    "hist_gradient_boosting": lambda **params: HistGradientBoostingClassifier(early_stopping=False, **params),
    "random_forest": lambda **params: RandomForestClassifier(n_jobs=1, **params),
    "dummy": lambda **params: DummyClassifier(strategy="prior", **params),
}
_REGRESSORS: dict[str, Callable[..., BaseEstimator]] = {
    "linear": Ridge,
    "hist_gradient_boosting": lambda **params: HistGradientBoostingRegressor(early_stopping=False, **params),
    "random_forest": lambda **params: RandomForestRegressor(n_jobs=1, **params),
    "dummy": lambda **params: DummyRegressor(strategy="mean", **params),
}

# Sized so that one trial (cross-validated) on ~5,000 rows takes a few seconds on two cores.
# `class_weight` is searched: "balanced" weighs a rare label up (churners are a quarter of the rows),
# which moves the scores of the minority class; the search keeps it only where it ranks better.
CLASS_WEIGHTS = [None, "balanced"]
_TREES = {
    "hist_gradient_boosting": {
        "learning_rate": loguniform(0.02, 0.3),
        "max_iter": [100, 200],
        "max_leaf_nodes": [7, 15, 31],
        "min_samples_leaf": [20, 50, 100],
        "l2_regularization": loguniform(1e-3, 10.0),
    },
    "random_forest": {
        "n_estimators": [100, 200, 300],
        "max_depth": [4, 6, 8, 12],
        "min_samples_leaf": [1, 5, 10, 20],
        "max_features": ["sqrt", 0.5],
    },
}
_LOGISTIC = {"C": loguniform(1e-2, 1e2), "class_weight": CLASS_WEIGHTS}
CLASSIFIER_SPACES: dict[str, dict[str, Any]] = {
    "logistic_regression": _LOGISTIC,
    "linear": _LOGISTIC,
    **{family: {"class_weight": CLASS_WEIGHTS, **space} for family, space in _TREES.items()},
    "dummy": {},
}
# Each family's first trial: scikit-learn's defaults (a strong baseline a search must beat), the
# forest's depth bounded as its space bounds it (an unbounded forest grows with the window).
BASELINES: dict[str, dict[str, Any]] = {
    "logistic_regression": {},
    "linear": {},
    "hist_gradient_boosting": {},
    "random_forest": {"max_depth": 12},
    "dummy": {},
}
REGRESSOR_SPACES: dict[str, dict[str, Any]] = {
    "linear": {"alpha": loguniform(1e-3, 1e2)},
    **_TREES,
    "dummy": {},
}
FAMILIES = tuple(_CLASSIFIERS)


def _factories(task: str) -> tuple[dict[str, Callable[..., BaseEstimator]], dict[str, dict[str, Any]]]:
    """The task's estimator factories and search spaces."""
    return (_REGRESSORS, REGRESSOR_SPACES) if task == "regression" else (_CLASSIFIERS, CLASSIFIER_SPACES)


def _check_family(family: str, task: str) -> None:
    factories, _ = _factories(task)
    if family not in factories:
        raise ValueError(f"unknown model family {family!r} for a {task} task; known: {list(factories)}")


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds, so parameters stay JSON-able."""
    return value.item() if hasattr(value, "item") else value


def sample_trials(
    families: Iterable[str], n_trials: int, random_state: int, task: str = "binary"
) -> list[Trial]:
    """`n_trials` parameter sets per family (one for `dummy`): the family's baseline (`<family>-0`,
    `BASELINES`), then `n_trials - 1` seeded draws from its space, the same ones for the same seed.

    Raises:
        ValueError: for a family unknown to the task or `n_trials` < 1.
    """
    if n_trials < 1:
        raise ValueError(f"n_trials must be at least 1, got {n_trials}")
    trials = []
    for family in families:
        _check_family(family, task)
        space = _factories(task)[1][family]
        draws = [{}]
        if space:
            draws = [
                BASELINES[family],
                *ParameterSampler(space, n_iter=n_trials - 1, random_state=random_state),
            ]
        trials += [
            Trial(f"{family}-{n}", family, {key: _plain(value) for key, value in sorted(params.items())})
            for n, params in enumerate(draws)
        ]
    logger.info("Drew %d trials over %s", len(trials), sorted({t.family for t in trials}))
    return trials


def build_model(spec: UseCase, family: str, params: Mapping[str, Any]) -> Pipeline:
    """The unfitted pipeline: the spec's preprocessor, then the task's form of the family with `params`.

    The estimator's `random_state`, where it has one, is the spec's `training.random_state`. A
    regression label declared `log_scale` is fitted as log(1 + y) and predicted back on its scale.

    Raises:
        ValueError: for a family unknown to the spec's task.
    """
    _check_family(family, spec.task)
    estimator = _factories(spec.task)[0][family](**params)
    if "random_state" in estimator.get_params():
        estimator.set_params(random_state=spec.training.random_state)
    if spec.task == "regression" and spec.label.log_scale:
        estimator = TransformedTargetRegressor(regressor=estimator, func=np.log1p, inverse_func=np.expm1)
    return Pipeline([("preprocess", build_preprocessor(spec)), ("model", estimator)])
