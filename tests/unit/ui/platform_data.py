"""A platform database with a use case's history, for the UI page's tests and its timing.

`fill` writes, through the registry and the run-record tables, `versions` trained versions (every
other one promoted, the rest rejected by the gate), and `days` daily ingest and scoring records with
a drift measure per feature: the page's data at the scale of a year of nightly runs.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import sqlalchemy as sa

from include.platform.day_swap import replace_rows
from include.platform.tables import drift_measures, ingest_runs, realised_performance, score_runs
from include.registry.registry import NewVersion, Registry
from include.training.compare import Bound, SliceGain
from include.training.curves import holdout_curves
from include.training.gate import GateDecision
from include.usecases.spec import UseCase

FIRST_DAY = dt.date(2025, 1, 1)
TRIALS = 8
FAMILY = "random_forest"


def _metrics(quality: float) -> dict[str, float]:
    return {
        "accuracy": 0.70 + quality / 4,
        "precision": 0.5 + quality / 4,
        "recall": 0.6 + quality / 4,
        "f1": 0.55 + quality / 4,
        "roc_auc": 0.75 + quality / 5,
        "pr_auc": 0.6 + quality / 4,
        "log_loss": 0.5 - quality / 4,
    }


def _curves(rng: np.random.Generator, quality: float, threshold: float) -> dict:
    y = rng.integers(0, 2, 1000)
    p = np.clip(0.5 * (1 - quality) * rng.random(1000) + y * quality + rng.normal(0, 0.2, 1000), 0, 1)
    return holdout_curves(y, p, threshold)


def _importance(spec: UseCase, n: int) -> dict | None:
    """Every feature's importance, the first feature most important; none stored for version 1."""
    if n == 1:
        return None
    features = [
        {"feature": name, "derived": False, "mean": round(0.05 / (rank + 1), 6), "std": 0.001}
        for rank, name in enumerate(spec.features.all)
    ]
    return {"metric": "roc_auc", "n_repeats": 5, "rows": 1000, "features": features}


def fill(engine: sa.Engine, spec: UseCase, versions: int = 3, days: int = 31) -> None:
    """Write `versions` versions with their gate decisions and `days` days of run records."""
    rng = np.random.default_rng(7)
    registry = Registry(engine)
    champion = None
    for n in range(1, versions + 1):
        ds = FIRST_DAY + dt.timedelta(days=(n - 1) * max(days // versions, 1))
        quality = 0.3 + 0.4 * n / versions + (-0.2 if n % 2 == 0 and n > 1 else 0)
        trials = [
            {
                "trial": {
                    "trial_id": f"random_forest-{t}",
                    "family": "random_forest",
                    "params": {"depth": t},
                },
                "primary": "roc_auc",
                "primary_mean": 0.7 + t / 100,
                "primary_std": 0.01,
                "metrics": _metrics(quality),
                "threshold": 0.3,
                "duration_seconds": 1.5,
            }
            for t in range(TRIALS)
        ]
        version = registry.register(
            NewVersion(
                use_case=spec.name,
                run_id=f"scheduled__{ds}T03:00:00+00:00",
                ds=ds,
                window_start=ds - dt.timedelta(days=59),
                window_end=ds,
                holdout_start=ds - dt.timedelta(days=13),
                holdout_end=ds,
                family=FAMILY,
                params={"depth": TRIALS - 1},
                chosen_trial=f"random_forest-{TRIALS - 1}",
                threshold=0.3,
                metrics=_metrics(quality),
                cv_metrics=_metrics(quality),
                trials=trials,
                reference=None,
                library_versions={"python": "3.11.7", "scikit-learn": "1.9.1"},
                code_version="src-0123456789abcdef",
                artifact_uri=f"file:///lake/models/{spec.name}/{n:064x}.skops",
                sha256=f"{n:064x}",
                fingerprint=f"{n:064x}",
                curves=_curves(rng, quality, 0.3),
                importance=_importance(spec, n),
            )
        )
        passed = champion is None or version.metrics["roc_auc"] > champion.metrics["roc_auc"]
        reasons = ["roc_auc above the champion's" if passed else "roc_auc not better than the champion's"]
        champion_curves = None if champion is None else _curves(rng, 0.5, champion.threshold)
        decision = GateDecision(
            passed,
            tuple(reasons),
            version.metrics,
            champion and champion.metrics,
            **_evidence(version.metrics, champion and champion.metrics),
        )
        registry.record_decision(version, champion, decision, champion_curves)
        if passed:
            registry.promote(spec.name, version.version, champion and champion.version)
            champion = registry.get(spec.name, version.version)
    features = list(spec.features.all)
    with engine.begin() as conn:
        for i in range(days):
            ds = FIRST_DAY + dt.timedelta(days=i)
            key = {"use_case": spec.name, "ds": ds}
            bad = i % 30 == 5
            replace_rows(conn, ingest_runs, key, [_ingest_row(spec, ds, bad)])
            psi = rng.gamma(1.5, 0.05, len(features))
            levels = ["alert" if v >= 0.25 else "warn" if v >= 0.1 else "ok" for v in psi]
            replace_rows(conn, score_runs, key, [_score_row(spec, ds, registry, max(levels, key=_rank))])
            if spec.outcomes is not None and i < days - spec.outcomes.maturity_days:
                replace_rows(conn, realised_performance, key, [_realised_row(spec, ds, registry, rng)])
            replace_rows(
                conn,
                drift_measures,
                key,
                [
                    {
                        **key,
                        "feature": f,
                        "model_version": 1,
                        "kind": "numeric",
                        "psi": float(v),
                        "level": level,
                        "buckets": [],
                        "reference_shares": [],
                        "actual_shares": [],
                        "rows": 80,
                    }
                    for f, v, level in zip(features, psi, levels, strict=True)
                ],
            )


def _realised_row(spec: UseCase, ds: dt.date, registry: Registry, rng: np.random.Generator) -> dict:
    """A matured day: the realised ROC AUC about the scoring version's holdout figure, some below it."""
    model = registry.champion_as_of(spec.name, ds) or registry.get(spec.name, 1)
    expected = model.metrics["roc_auc"]
    estimate = float(expected + rng.normal(-0.01, 0.04))
    figure = {"estimate": estimate, "lower": estimate - 0.05, "upper": estimate + 0.05}
    return {
        "use_case": spec.name,
        "ds": ds,
        "model_version": model.version,
        "evaluated_through": ds + dt.timedelta(days=spec.outcomes.maturity_days),
        "rows_scored": 80,
        "rows_matched": int(rng.integers(60, 81)),
        "primary_metric": "roc_auc",
        "metrics": {"roc_auc": figure},
        "expected": {"roc_auc": expected},
        "decayed": figure["upper"] < expected,
        "run_id": f"scheduled__{ds}T00:00:00+00:00",
    }


def _rank(level: str) -> int:
    return ["ok", "warn", "alert"].index(level)


def _ingest_row(spec: UseCase, ds: dt.date, bad: bool) -> dict:
    sources = [s.name for s in spec.sources]
    quarantined = dict.fromkeys(sources, 2 if bad else 0)
    return {
        "use_case": spec.name,
        "ds": ds,
        "run_id": f"scheduled__{ds}T00:00:00+00:00",
        "rows_read": dict.fromkeys(sources, 80),
        "rows_quarantined": quarantined,
        "rows_joined": 78 if bad else 80,
        "rows_written": 78 if bad else 80,
        "partition_uri": f"file:///lake/raw/{spec.name}/ds={ds}/part-0.parquet",
        "quarantine_uri": None,
        "quarantine_reasons": {"billing": {"TotalCharges: not a number": 2}} if bad else None,
    }


def _score_row(spec: UseCase, ds: dt.date, registry: Registry, drift: str) -> dict:
    model = registry.champion_as_of(spec.name, ds) or registry.get(spec.name, 1)
    return {
        "use_case": spec.name,
        "ds": ds,
        "run_id": f"scheduled__{ds}T00:00:00+00:00",
        "model_version": model.version,
        "model_sha256": model.sha256,
        "threshold": model.threshold,
        "rows_in": 80,
        "rows_scored": 79,
        "rows_rejected": 1,
        "rejected_reasons": {"no entity id": 1},
        "score_mean": 0.26,
        "positive_rate": 0.3,
        "score_histogram": [20, 15, 10, 8, 7, 6, 5, 4, 3, 1],
        "drift_level": drift,
        "predictions_uri": f"file:///lake/predictions/{spec.name}/ds={ds}/part-0.parquet",
    }


def _evidence(candidate: dict[str, float], champion: dict[str, float] | None) -> dict:
    """Paired gains of roc_auc and accuracy, +-0.01 bounds, and one slice, as the gate stores them."""
    if champion is None:
        return {}
    gains = {
        m: Bound(
            m,
            candidate[m] - champion[m],
            candidate[m] - champion[m] - 0.01,
            candidate[m] - champion[m] + 0.01,
            0.9,
        )
        for m in ("roc_auc", "accuracy")
    }
    month = SliceGain("Contract", "Month-to-month", 610, Bound("roc_auc", 0.004, -0.006, 0.014, 0.9))
    return {"differences": gains, "primary": "roc_auc", "slices": (month,)}


def fill_task_example(engine: sa.Engine, spec: UseCase, rows: pd.DataFrame, ds: dt.date) -> None:
    """Two versions of a regression or multiclass use case trained on `rows` (real data) with the
    platform's own fitting, pictures and gate: the linear family (v1, champion if it clears the
    floor), then gradient boosting (v2) judged against it on the same holdout (a fifth of the rows,
    seeded)."""
    from include.training.compare import Scored, metric_bounds
    from include.training.curves import task_curves
    from include.training.estimators import Trial
    from include.training.gate import decide
    from include.training.metrics import evaluate_outputs
    from include.training.preprocess import label_classes, split_xy
    from include.training.tuning import fit_final

    holdout = rows.sample(frac=0.2, random_state=0)
    train = rows.drop(holdout.index)
    classes = label_classes(spec, train)
    y = split_xy(holdout, spec, classes)[1].to_numpy()
    registry, gate, champion, champion_scored = Registry(engine), spec.gate, None, None
    for n, family in enumerate(("linear", "hist_gradient_boosting"), start=1):
        trial = Trial(f"{family}-0", family, {})
        model = fit_final(spec, trial, train, 0.5, classes)
        outputs = model.outputs(split_xy(holdout, spec, classes)[0])
        scored = Scored(outputs, regression=spec.task == "regression")
        metrics = evaluate_outputs(spec.task, y, outputs, 0.5)
        version = registry.register(
            NewVersion(
                use_case=spec.name,
                run_id=f"scheduled__{ds}T03:0{n}:00+00:00",
                ds=ds,
                window_start=ds - dt.timedelta(days=spec.training.window_days - 1),
                window_end=ds,
                holdout_start=ds - dt.timedelta(days=spec.training.holdout_days - 1),
                holdout_end=ds,
                family=family,
                params={},
                chosen_trial=trial.trial_id,
                threshold=0.5,
                metrics=metrics,
                cv_metrics=metrics,
                trials=[],
                reference=None,
                library_versions={},
                code_version="src-example",
                artifact_uri=f"file:///lake/models/{spec.name}/{n:064x}.skops",
                sha256=f"{n:064x}",
                fingerprint=f"{n:064x}",
                curves=task_curves(spec.task, y, outputs, 0.5, classes),
            )
        )
        names = [gate.primary, *gate.guardrails]
        levels, differences = metric_bounds(
            y, scored, champion_scored, names, gate.confidence, gate.resamples, seed=0
        )
        figures = {name: bound.estimate for name, bound in levels.items()}
        decision = decide(figures, champion and champion.metrics, gate, levels, differences)
        registry.record_decision(version, champion, decision, champion and champion.curves)
        if decision.passed:
            registry.promote(spec.name, version.version, champion and champion.version)
            champion, champion_scored = registry.get(spec.name, version.version), scored
