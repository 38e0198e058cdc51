"""Permutation importance of a fitted model on its holdout: what each feature is worth to it.

A feature's importance is how much the spec's primary metric falls when that feature's values are
shuffled across the holdout rows (`sklearn.inspection.permutation_importance`, seeded), the mean
and standard deviation over `n_repeats` shuffles, for every input of the model:

- each raw input column, shuffled as it arrives (so everything the pipeline computes from it, a
  derived feature that reads it or its missing indicator, is shuffled with it);
- each input the pipeline computes (`derived: true`), shuffled on its own after it is computed,
  under its own name: a derived feature (`features.derived`), and a missing indicator
  `<name>_missing` (also `indicator: true`) of a numeric or derived feature that had missing
  values in training. An indicator's figure is what the flag "this value was imputed" is worth
  beyond the imputed value itself.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance

from include.registry.model_files import FittedModel, class_probabilities
from include.training.compare import Scored, weighted_metric
from include.usecases.spec import direction

logger = logging.getLogger(__name__)

N_REPEATS = 5
# Holdout rows shuffled at most (a seeded sample beyond): the cost stays flat as windows grow.
MAX_ROWS = 10_000
DIGITS = 6


def _scorer(metric: str, model: FittedModel):
    """A scorer for `permutation_importance`: `metric` of the model's outputs for its task (at its
    threshold, binary), higher is better.

    Measured as the gate measures it (`weighted_metric` under unit weights: scikit-learn's figure,
    without its per-call input checks, which cost more than the metric on a few thousand rows).
    """

    def score(estimator: Any, X: Any, y: np.ndarray) -> float:
        if model.task == "regression":
            scored = Scored(np.asarray(estimator.predict(X), dtype="float64"), regression=True)
        elif model.task == "multiclass":
            scored = Scored(class_probabilities(estimator, X, len(model.classes or ())))
        else:
            scored = Scored(estimator.predict_proba(X)[:, 1], model.threshold)
        return direction(metric) * float(weighted_metric(metric, y, scored, np.ones((1, len(y))))[0])

    return score


# The ColumnTransformer groups of the inputs the pipeline computes (include/training/preprocess.py).
COMPUTED_GROUPS = ("derived", "numeric_missing", "derived_missing")
INDICATOR_GROUPS = ("numeric_missing", "derived_missing")


class _DesignGiven:
    """The fitted pipeline's model step on its design matrix, with some of its columns (the inputs
    the pipeline computes) taken from X: shuffling a column of X shuffles one of those inputs and
    nothing else.

    Derived features are imputed and scaled column by column, and an indicator is a column of its
    own, so shuffling one output column is shuffling that input itself.
    """

    def __init__(self, model: FittedModel, design: np.ndarray, columns: np.ndarray | slice) -> None:
        self.model, self.design, self.columns = model, design, columns

    def fit(self, X: Any, y: Any) -> _DesignGiven:
        return self

    @property
    def classes_(self) -> np.ndarray:
        return self.model.pipeline.named_steps["model"].classes_

    def _design(self, X: np.ndarray) -> np.ndarray:
        design = self.design.copy()
        design[:, self.columns] = X
        return design

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.model.pipeline.named_steps["model"].predict_proba(self._design(X))

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.model.pipeline.named_steps["model"].predict(self._design(X))


def _importances(
    result: Any, names: list[str], derived: bool, indicators: list[bool] | None = None
) -> list[dict[str, Any]]:
    flags = indicators or [False] * len(names)
    return [
        {
            "feature": name,
            "derived": derived,
            "indicator": indicator,
            "mean": round(float(mean), DIGITS),
            "std": round(float(std), DIGITS),
        }
        for name, indicator, mean, std in zip(
            names, flags, result.importances_mean, result.importances_std, strict=True
        )
    ]


def computed_inputs(preprocess: Any) -> tuple[np.ndarray, list[str], list[bool]]:
    """The design-matrix columns of the inputs a fitted preprocessor computes, their names (a derived
    feature's, `<name>_missing` for an indicator) and whether each is a missing indicator."""
    every = preprocess.get_feature_names_out()
    columns: list[int] = []
    names: list[str] = []
    indicators: list[bool] = []
    for group in COMPUTED_GROUPS:
        found = preprocess.output_indices_.get(group, slice(0, 0))
        for column in range(found.start, found.stop):
            columns.append(column)
            names.append(str(every[column]).removeprefix(f"{group}__"))
            indicators.append(group in INDICATOR_GROUPS)
    return np.asarray(columns, dtype=np.intp), names, indicators


def permutation_importances(
    model: FittedModel,
    X: pd.DataFrame,
    y: pd.Series,
    metric: str,
    random_state: int,
    n_repeats: int = N_REPEATS,
    max_rows: int = MAX_ROWS,
) -> dict[str, Any]:
    """Each model input's permutation importance on the holdout: the raw input columns, the derived
    features and the missing indicators (module doc).

    Args:
        model: the fitted model (its pipeline and threshold).
        X: the holdout's feature columns (`split_xy`); y: its labels as `split_xy` gives them.
        metric: the metric whose fall measures importance (the gate's primary).
        random_state: seeds the row sample and the shuffles.
        n_repeats: shuffles per feature.
        max_rows: at most this many holdout rows are used (a seeded sample beyond).

    Returns:
        `{"metric", "n_repeats", "rows", "features": [{"feature", "derived", "indicator", "mean",
        "std"}]}`, the features by mean importance, highest first (a mean near 0 or below: the
        model does not rely on the feature).

    Raises:
        ValueError: when the rows hold a single class, or X and y differ in length.
    """
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} rows and y {len(y)}")
    started = time.perf_counter()
    if len(X) > max_rows:
        keep = np.sort(np.random.default_rng(random_state).choice(len(X), max_rows, replace=False))
        X, y = X.iloc[keep], y.iloc[keep]
    labels = y.to_numpy()
    score = _scorer(metric, model)
    common = {"scoring": score, "n_repeats": n_repeats, "random_state": random_state, "n_jobs": 1}
    raw = permutation_importance(model.pipeline, X, labels, **common)
    features = _importances(raw, list(X.columns), derived=False)
    preprocess = model.pipeline.named_steps["preprocess"]
    columns, names, indicators = computed_inputs(preprocess)
    if len(columns):
        design = preprocess.transform(X)
        design = np.asarray(design.toarray() if hasattr(design, "toarray") else design, dtype="float64")
        given = _DesignGiven(model, design, columns)
        computed = permutation_importance(given, design[:, columns], labels, **common)
        features += _importances(computed, names, derived=True, indicators=indicators)
    features.sort(key=lambda f: (-f["mean"], f["feature"]))
    logger.info(
        "Permutation importance of %d features (%s, %d repeats, %d rows) in %.1f s",
        len(features),
        metric,
        n_repeats,
        len(X),
        time.perf_counter() - started,
    )
    return {"metric": metric, "n_repeats": n_repeats, "rows": len(X), "features": features}
