"""The training DAG's task bodies: plan, run a trial, fit and register, gate, promote.

Each takes plain values (and the Airflow context where it needs the run's day and id) and passes
references between tasks: lake keys, version numbers and metric dicts, never a data frame.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from include.config import Settings
from include.usecases.spec import UseCase, get_spec

if TYPE_CHECKING:
    import pandas as pd

    from include.io.stores import ObjectStore
    from include.registry.registry import ModelVersion
    from include.training.gate import GateDecision

log = logging.getLogger(__name__)

OVERRIDABLE = ("estimators", "n_trials", "window_days")


def _spec_with(use_case: str, params: dict[str, Any]) -> UseCase:
    """The spec with the run's overrides (trigger form params), validated like the file itself."""
    from include.usecases.spec import UseCase

    spec = get_spec(use_case, Settings.from_env().spec_dir)
    raw = spec.model_dump()
    raw["training"].update({k: params[k] for k in OVERRIDABLE if params.get(k) not in (None, [])})
    if params.get("min_improvement") is not None:
        raw["gate"]["min_improvement"] = params["min_improvement"]
    return UseCase.model_validate(raw)


def _lake_and_registry():
    from include.io.connections import store_for
    from include.platform.schema import platform_engine
    from include.registry.registry import Registry

    settings = Settings.from_env()
    return store_for(settings.lake_conn_id), Registry(platform_engine(settings.platform_db_conn_id))


def plan_training(use_case: str, context: Any) -> dict[str, Any]:
    """Assemble the window as of the run's day, split off the holdout, store both in the lake.

    The plan carries the run's fingerprint (`include.provenance.training_fingerprint`), by which
    `fit_and_register` recognises a model it has made before.
    """
    from include.io.lake import RAW_ZONE, read_days, training_key, write_frame
    from include.partition import check_params, partition_from_context
    from include.provenance import training_fingerprint
    from include.training.split import DATE_COLUMN, split_holdout

    params = context["params"]
    check_params(params)  # before the overrides are applied: a NaN there fails naming the param
    spec = _spec_with(use_case, params)
    ds = partition_from_context(context, spec.schedule.timezone).ds
    lake, _ = _lake_and_registry()
    first = ds - dt.timedelta(days=spec.training.window_days - 1)
    frame, days = read_days(lake, RAW_ZONE, use_case, first, ds)
    if ds not in days:
        raise ValueError(
            f"{use_case}: no partition for ds={ds} in the lake; run {spec.ingest_dag_id} for it first"
        )
    missing = spec.training.window_days - len(days)
    if missing:
        log.warning(
            "%s: %d of %d days of the window have no partition", use_case, missing, spec.training.window_days
        )
    train, holdout = split_holdout(
        frame, DATE_COLUMN, ds, spec.training.window_days, spec.training.holdout_days
    )
    train_key, holdout_key = training_key(use_case, ds, "train"), training_key(use_case, ds, "holdout")
    write_frame(lake, train_key, train)
    write_frame(lake, holdout_key, holdout)
    log.info("%s as of %s: %d train rows, %d holdout rows", use_case, ds, len(train), len(holdout))
    holdout_days = holdout[DATE_COLUMN]
    return {
        "ds": ds.isoformat(),
        "train_key": train_key,
        "holdout_key": holdout_key,
        "window": [min(days).isoformat(), ds.isoformat()],
        "holdout": [holdout_days.min().date().isoformat(), holdout_days.max().date().isoformat()],
        "rows": {"train": len(train), "holdout": len(holdout)},
        "fingerprint": training_fingerprint(days, spec),
    }


def sample_trials(use_case: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """The parameter sets to cross-validate, one mapped task each."""
    from include.training.estimators import sample_trials as sample

    training = _spec_with(use_case, params).training
    return [t.to_dict() for t in sample(training.estimators, training.n_trials, training.random_state)]


def run_trial(
    use_case: str, plan: dict[str, Any], trial: dict[str, Any], params: dict[str, Any]
) -> dict[str, Any]:
    """Cross-validate one trial on the training part."""
    from include.io.lake import read_frame
    from include.training.estimators import Trial
    from include.training.tuning import run_trial as cross_validate

    spec = _spec_with(use_case, params)
    lake, _ = _lake_and_registry()
    return cross_validate(spec, Trial.from_dict(trial), read_frame(lake, plan["train_key"])).to_dict()


def fit_and_register(
    use_case: str, plan: dict[str, Any], results: list[dict[str, Any]], params: dict[str, Any], run_id: str
) -> dict[str, Any]:
    """Refit the best trial on the whole training part, score the holdout, store the model, register it
    with its holdout metrics, curves and permutation importance.

    A run whose fingerprint an earlier run's version already has (the same window content, code,
    libraries and search) makes the same model: it registers nothing, and is recorded against that
    version as `unchanged` (the summary's `unchanged` is then true).
    """
    from include.io.lake import read_frame
    from include.monitoring.drift import build_reference
    from include.provenance import code_version, library_versions
    from include.registry.model_files import dump_model, store_model
    from include.registry.registry import NewVersion, TrainingRun
    from include.training.curves import holdout_curves
    from include.training.importance import permutation_importances
    from include.training.metrics import evaluate
    from include.training.preprocess import split_xy
    from include.training.tuning import TrialResult, best_trial, fit_final

    spec = _spec_with(use_case, params)
    lake, registry = _lake_and_registry()
    ds, fingerprint = dt.date.fromisoformat(plan["ds"]), plan["fingerprint"]
    same = registry.with_fingerprint(use_case, fingerprint)
    if same is not None and same.run_id != run_id:
        registry.record_training_run(
            TrainingRun(use_case, run_id, ds, same.version, "unchanged", fingerprint)
        )
        log.info(
            "%s as of %s: window, code, libraries and search unchanged since v%d (run %s): "
            "no new version; the run is recorded against v%d",
            use_case,
            ds,
            same.version,
            same.run_id,
            same.version,
        )
        return {**same.summary(), "unchanged": True}
    train, holdout = read_frame(lake, plan["train_key"]), read_frame(lake, plan["holdout_key"])
    trial_results = [TrialResult.from_dict(r) for r in results]
    best = best_trial(trial_results, spec.gate.primary)
    model = fit_final(spec, best.trial, train, best.threshold)
    x_holdout, y_holdout = split_xy(holdout, spec)
    holdout_proba = model.predict_proba(x_holdout)
    metrics = evaluate(y_holdout, holdout_proba, model.threshold)
    data = dump_model(model, {"use_case": use_case, "ds": plan["ds"], "trial": best.trial.trial_id})
    uri, sha = store_model(lake, use_case, data)
    version = registry.register(
        NewVersion(
            use_case=use_case,
            run_id=run_id,
            ds=ds,
            window_start=dt.date.fromisoformat(plan["window"][0]),
            window_end=dt.date.fromisoformat(plan["window"][1]),
            holdout_start=dt.date.fromisoformat(plan["holdout"][0]),
            holdout_end=dt.date.fromisoformat(plan["holdout"][1]),
            family=best.trial.family,
            params=dict(best.trial.params),
            threshold=model.threshold,
            metrics=metrics,
            cv_metrics=dict(best.metrics),
            trials=[r.to_dict() for r in trial_results],
            reference=build_reference(train, spec).to_dict(),
            library_versions=library_versions(),
            code_version=code_version(),
            artifact_uri=uri,
            sha256=sha,
            fingerprint=fingerprint,
            curves=holdout_curves(y_holdout, holdout_proba, model.threshold),
            importance=permutation_importances(
                model, x_holdout, y_holdout, spec.gate.primary, spec.training.random_state
            ),
            row_counts={"train": len(train), "holdout": len(holdout)},
        )
    )
    registry.record_training_run(
        TrainingRun(use_case, run_id, ds, version.version, "registered", fingerprint)
    )
    log.info("%s: registered v%d (%s) holdout %s", use_case, version.version, best.trial.trial_id, metrics)
    return {**version.summary(), "unchanged": False}


def gate(use_case: str, plan: dict[str, Any], candidate: dict[str, Any], context: Any) -> bool:
    """Score the champion on the candidate's holdout, decide, store the decision; True to promote.

    A rejection is also sent as an alert (include/alerting.py). An `unchanged` candidate (an
    existing version, see `fit_and_register`) is not judged again: its decision stands.
    """
    from include.alerting import PlatformAlert
    from include.io.lake import read_frame
    from include.registry.registry import OLDER_THAN_CHAMPION
    from include.training.gate import GateDecision

    spec = _spec_with(use_case, context["params"])
    lake, registry = _lake_and_registry()
    version = registry.get(use_case, candidate["version"])
    if candidate.get("unchanged"):
        log.info("%s v%d is unchanged (%s): not judged again", use_case, version.version, version.status)
        return False
    champion = registry.champion(use_case)

    def alert_rejected(reasons: list[str]) -> None:
        PlatformAlert(
            Settings.from_env().alerts_conn_id,
            spec.schedule.timezone,
            event="rejected",
            reasons=reasons,
            use_case=use_case,
            candidate_version=version.version,
            champion_version=champion.version if champion else None,
        )(context)

    if champion is not None and champion.ds > version.ds:
        older = f"trained as of {version.ds}, champion v{champion.version} as of {champion.ds}"
        reasons = [f"{OLDER_THAN_CHAMPION} ({older})"]
        registry.record_decision(
            version, champion, GateDecision(False, tuple(reasons), version.metrics, None)
        )
        log.info("%s v%d: %s", use_case, version.version, reasons[0])
        alert_rejected(reasons)
        return False
    decision, champion_curves = judge(spec, read_frame(lake, plan["holdout_key"]), lake, version, champion)
    registry.record_decision(version, champion, decision, champion_curves)
    log.info("%s v%d gate: %s — %s", use_case, version.version, decision.passed, "; ".join(decision.reasons))
    if not decision.passed:
        alert_rejected(list(decision.reasons))
    return decision.passed


def judge(
    spec: UseCase,
    holdout: pd.DataFrame,
    lake: ObjectStore,
    candidate: ModelVersion,
    champion: ModelVersion | None,
) -> tuple[GateDecision, dict[str, Any] | None]:
    """Score both models' files on the holdout and decide on their paired bootstrap bounds; the
    decision, and the champion's curves on that holdout (for the UI page; None without a champion).

    Both are loaded like every reader loads them (`load_version_model`, sha256 checked), so the gate
    judges the very files that will score; the resamples are seeded by `training.random_state`, so a
    rerun decides the same.
    """
    from include.registry.model_files import load_version_model
    from include.training.compare import Scored, metric_bounds, slice_gains
    from include.training.curves import holdout_curves
    from include.training.gate import decide
    from include.training.metrics import evaluate
    from include.training.preprocess import split_xy

    x_holdout, y_holdout = split_xy(holdout, spec)

    def scored(version: ModelVersion) -> Scored:
        model = load_version_model(lake, version)
        return Scored(model.predict_proba(x_holdout), model.threshold)

    mine = scored(candidate)
    theirs = scored(champion) if champion is not None else None
    gate = spec.gate
    levels, differences = metric_bounds(
        y_holdout.to_numpy(),
        mine,
        theirs,
        list(dict.fromkeys([gate.primary, *gate.guardrails])),
        gate.confidence,
        gate.resamples,
        spec.training.random_state,
    )
    champion_metrics, champion_curves, slices = None, None, []
    if theirs is not None:
        champion_metrics = evaluate(y_holdout, theirs.proba, theirs.threshold)
        champion_curves = holdout_curves(y_holdout, theirs.proba, theirs.threshold)
        columns = {column: holdout[column].tolist() for column in gate.slices}
        slices = slice_gains(
            y_holdout.to_numpy(),
            mine,
            theirs,
            columns,
            gate.primary,
            gate.confidence,
            gate.resamples,
            spec.training.random_state,
        )
    return decide(candidate.metrics, champion_metrics, gate, levels, differences, slices), champion_curves


def promote(use_case: str, candidate: dict[str, Any]) -> dict[str, Any]:
    """Move the champion alias to the candidate, expecting the champion the gate compared it with."""
    _, registry = _lake_and_registry()
    decision = registry.decision(use_case, candidate["version"])
    if decision is None or not decision.passed:
        raise ValueError(f"{use_case} v{candidate['version']}: no passed gate decision to promote on")
    promotion = registry.promote(use_case, candidate["version"], decision.champion_version)
    if not promotion.promoted:
        registry.set_status(use_case, candidate["version"], "rejected", promotion.reason)
    log.info("%s v%d: %s", use_case, candidate["version"], promotion.reason)
    return {"promoted": promotion.promoted, "reason": promotion.reason, "version": candidate["version"]}
