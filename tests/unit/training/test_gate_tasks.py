"""The gate's error rates for a regression and a multiclass use case, in seeded simulations on the
worked examples' real rows (as `test_compare.py` measures them for binary churn).

Per try, a fresh split of the rows: a champion and a challenger are the same small forest on the
same rows with different seeds (a twin: promoted at most once in 20), and a weaker champion is the
first one's seed without the strongest features (a real improvement: promoted at least 19 in 20).
Each is judged by the example spec's own gate: RMSE with an MAE guard-rail; log loss with a macro F1
guard-rail.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from include.registry.model_files import FittedModel, Trial
from include.training.compare import Scored
from include.training.estimators import build_model
from include.training.metrics import evaluate_outputs
from include.training.preprocess import label_classes, split_xy
from include.usecases.spec import UseCase, load_spec
from tests.unit.training.test_compare import promotions
from tools.examples.seed import example_spec, hotel_rows, hpc_rows

TRIES = 20
FOREST = {"n_estimators": 20, "max_depth": 8, "min_samples_leaf": 5, "max_features": 0.5}
EXAMPLES = {
    # name: (rows, holdout rows, the features the weaker champion lacks)
    "hotel_rates": (hotel_rows, 1500, {"historical_adr", "reserved_room_type", "assigned_room_type"}),
    "hpc_jobs": (hpc_rows, 1100, {"protocol", "compounds"}),
}


def _scored(spec: UseCase, seed: int, train: pd.DataFrame, holdout: pd.DataFrame, classes) -> Scored:
    seeded = spec.model_copy(update={"training": spec.training.model_copy(update={"random_state": seed})})
    x, y = split_xy(train, seeded, classes)
    pipeline = build_model(seeded, "random_forest", FOREST).fit(x, y)
    metadata = {"task": spec.task, **({"classes": list(classes)} if classes else {})}
    outputs = FittedModel(pipeline, 0.5, Trial("forest", "random_forest", FOREST), metadata).outputs(
        split_xy(holdout, seeded, classes)[0]
    )
    return Scored(outputs, regression=spec.task == "regression")


def _without(spec: UseCase, names: set[str]) -> UseCase:
    kinds = ("numeric", "categorical", "boolean")
    features = spec.features.model_copy(
        update={k: tuple(n for n in getattr(spec.features, k) if n not in names) for k in kinds}
    )
    return spec.model_copy(update={"features": features})


@pytest.fixture(scope="module", params=sorted(EXAMPLES))
def tries(request) -> tuple[UseCase, list[dict]]:
    name = request.param
    rows, holdout_rows, strongest = EXAMPLES[name]
    spec = load_spec(example_spec(name))
    frame = rows()
    frame = frame.sample(n=min(len(frame), 6000), random_state=0).reset_index(drop=True)
    classes = label_classes(spec, frame)
    out = []
    for attempt in range(TRIES):
        shuffled = frame.sample(frac=1.0, random_state=attempt).reset_index(drop=True)
        holdout, train = shuffled.iloc[:holdout_rows], shuffled.iloc[holdout_rows:]
        out.append(
            {
                "y": split_xy(holdout, spec, classes)[1].to_numpy(),
                "champion": _scored(spec, 1000 + attempt, train, holdout, classes),
                "challenger": _scored(spec, 2000 + attempt, train, holdout, classes),
                "lacking": _scored(_without(spec, strongest), 1000 + attempt, train, holdout, classes),
            }
        )
    return spec, out


def test_a_reseeded_twin_is_promoted_at_most_once_in_20(tries):
    spec, found = tries
    assert promotions(spec, found, "champion") <= 1


def test_a_challenger_over_a_champion_lacking_the_strongest_features_is_promoted_19_of_20(tries):
    spec, found = tries
    assert promotions(spec, found, "lacking") >= 19


def test_the_weighted_metrics_equal_scikit_learns_under_unit_weights(tries):
    from include.training.compare import weighted_metric

    spec, found = tries
    y, scored = found[0]["y"], found[0]["champion"]
    expected = evaluate_outputs(spec.task, y, scored.proba)
    for metric, value in expected.items():
        got = float(weighted_metric(metric, y, scored, np.ones((1, len(y))))[0])
        assert got == pytest.approx(value, rel=1e-9, abs=1e-12), metric
