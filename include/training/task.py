"""The training DAG's stages: plan, run a trial, fit and register, gate, promote.

Each takes the run's facts and the stores (`include.runs`) and passes typed references between
tasks (`TrainingPlan`: lake keys and the window; `Candidate`: the registered version), never a
data frame. The run's spec, with its form overrides applied once, comes with the run's facts.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import Field

from include.runs import RunFacts, Stores, XComResult

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import sqlalchemy as sa

    from include.io.stores import ObjectStore
    from include.registry.model_files import FittedModel
    from include.registry.registry import ModelVersion
    from include.training.backtest import Backtest
    from include.training.estimators import Trial
    from include.training.gate import GateDecision
    from include.training.tuning import TrialResult
    from include.usecases.spec import UseCase

log = logging.getLogger(__name__)

# What the gate calls on a rejection: its reasons, and the versions judged (for an alert).
RejectionAlert = Callable[[Sequence[str], dict[str, Any]], None]


class WindowCoverage(XComResult):
    """Which days of a run's window it read: only those whose ingest run record is committed.

    Attributes:
        withdrawn: days with a partition in the lake but no ingest record (a rerun that failed, or
            one still running): their partition is not trusted.
        missing: days with neither.
        sha256: each read day's partition checksum (the run's fingerprint is made of them).
    """

    first: dt.date
    last: dt.date
    read: list[dt.date]
    withdrawn: list[dt.date]
    missing: list[dt.date]
    sha256: dict[dt.date, str] = Field(default_factory=dict)

    def text(self) -> str:
        """`window 2025-03-01..07: 6 of 7 days, 03-05 withdrawn`."""
        expected = (self.last - self.first).days + 1
        last = self.last.isoformat()[5:] if self.last.year == self.first.year else self.last.isoformat()
        gaps = [
            f"{', '.join(day.isoformat()[5:] for day in days)} {what}"
            for what, days in (("withdrawn", self.withdrawn), ("missing", self.missing))
            if days
        ]
        return f"window {self.first}..{last}: {len(self.read)} of {expected} days" + "".join(
            f", {gap}" for gap in gaps
        )


class TrainingPlan(XComResult):
    """The run's window in the lake: its train and holdout parts, their days and the run's fingerprint."""

    ds: dt.date
    train_key: str
    holdout_key: str
    window: tuple[dt.date, dt.date]
    holdout: tuple[dt.date, dt.date]
    rows: dict[str, int]
    fingerprint: str
    spec_sha256: str
    coverage: WindowCoverage
    # A multiclass label's classes in the order the run's models report them (None: another task).
    classes: list[bool | int | str] | None = None


class Candidate(XComResult):
    """The version the run registered, or the existing one it recognised (`unchanged`)."""

    version: int
    ds: dt.date
    family: str
    status: str
    sha256: str
    metrics: dict[str, float | None]
    unchanged: bool

    @classmethod
    def of(cls, version: ModelVersion, unchanged: bool) -> Candidate:
        return cls(
            version=version.version,
            ds=version.ds,
            family=version.family,
            status=version.status,
            sha256=version.sha256,
            metrics=version.metrics,
            unchanged=unchanged,
        )


def plan_training(run: RunFacts, stores: Stores) -> TrainingPlan:
    """Assemble the window as of the run's day, split off the holdout, store both in the lake.

    The plan carries the run's fingerprint (`include.provenance.training_fingerprint`), by which
    `fit_and_register` recognises a model it has made before.
    """
    from include.io.lake import RAW_ZONE, partition_days, read_days, training_key, write_frame
    from include.io.lineage import report_lineage
    from include.platform.queries import committed_days
    from include.provenance import training_fingerprint
    from include.training.preprocess import check_label, label_classes
    from include.training.split import DATE_COLUMN, split_holdout

    spec, ds, lake = run.spec, run.ds, stores.lake
    first = ds - dt.timedelta(days=spec.training.window_days - 1)
    committed = committed_days(stores.platform, spec.name, first, ds)
    frame, days = read_days(lake, RAW_ZONE, spec.name, first, ds, only=committed)
    present = {d for d in partition_days(lake, RAW_ZONE, spec.name) if first <= d <= ds}
    window = [first + dt.timedelta(days=n) for n in range(spec.training.window_days)]
    coverage = WindowCoverage(
        first=first,
        last=ds,
        read=sorted(days),
        withdrawn=sorted(present - set(days)),
        missing=[d for d in window if d not in present],
        sha256=dict(sorted(days.items())),
    )
    if ds not in days:
        why = (
            "its ingest run record is withdrawn: a failed or running rerun"
            if ds in present
            else "not ingested"
        )
        raise ValueError(
            f"{spec.name}: no committed partition for ds={ds} in the lake ({why}); "
            f"run {spec.ingest_dag_id} for it first"
        )
    if coverage.withdrawn or coverage.missing:
        log.warning("%s as of %s: %s", spec.name, ds, coverage.text())
    check_label(frame, spec)
    train, holdout = split_holdout(
        frame, DATE_COLUMN, ds, spec.training.window_days, spec.training.holdout_days
    )
    train_key, holdout_key = training_key(spec.name, ds, "train"), training_key(spec.name, ds, "holdout")
    write_frame(lake, train_key, train)
    write_frame(lake, holdout_key, holdout)
    report_lineage(wrote=[lake.uri(train_key), lake.uri(holdout_key)])
    log.info("%s as of %s: %d train rows, %d holdout rows", spec.name, ds, len(train), len(holdout))
    holdout_days = holdout[DATE_COLUMN]
    return TrainingPlan(
        ds=ds,
        train_key=train_key,
        holdout_key=holdout_key,
        window=(min(days), ds),
        holdout=(holdout_days.min().date(), holdout_days.max().date()),
        rows={"train": len(train), "holdout": len(holdout)},
        fingerprint=training_fingerprint(days, spec),
        spec_sha256=run.spec_sha256,
        coverage=coverage,
        classes=None if (classes := label_classes(spec, frame)) is None else list(classes),
    )


def sample_trials(run: RunFacts) -> list[Trial]:
    """The parameter sets to cross-validate, one mapped task each."""
    from include.training.estimators import sample_trials as sample

    training = run.spec.training
    return sample(training.estimators, training.n_trials, training.random_state, run.spec.task)


def run_trial(run: RunFacts, plan: TrainingPlan, trial: Trial, stores: Stores) -> TrialResult:
    """Cross-validate one trial on the training part."""
    from include.io.lake import read_frame
    from include.training.tuning import run_trial as cross_validate

    run.check_spec(plan.spec_sha256)
    return cross_validate(run.spec, trial, read_frame(stores.lake, plan.train_key), plan.classes)


def fit_and_register(
    run: RunFacts, plan: TrainingPlan, results: Sequence[TrialResult], stores: Stores
) -> Candidate:
    """Refit the best trial on the whole training part, score the holdout, store the model, register it
    with its holdout metrics, curves and permutation importance, and write its model card.

    A run whose fingerprint an earlier run's version already has (the same window content, code,
    libraries and search) makes the same model: it registers nothing, and is recorded against that
    version as `unchanged`.
    """
    from include.io.lake import read_frame
    from include.io.lineage import report_lineage
    from include.monitoring.reference import build_reference, prediction_reference
    from include.provenance import code_version, library_versions
    from include.registry.model_card import write_card
    from include.registry.model_files import dump_model, store_model
    from include.registry.registry import NewVersion, TrainingRun
    from include.training.curves import task_curves
    from include.training.importance import permutation_importances
    from include.training.metrics import evaluate_outputs
    from include.training.preprocess import split_xy
    from include.training.tuning import best_trial, fit_final

    run.check_spec(plan.spec_sha256)
    spec, lake, registry = run.spec, stores.lake, stores.registry
    use_case, ds, fingerprint = spec.name, plan.ds, plan.fingerprint
    same = registry.with_fingerprint(use_case, fingerprint)
    if same is not None and same.run_id != run.run_id:
        registry.record_training_run(
            TrainingRun(
                use_case,
                run.run_id,
                ds,
                same.version,
                "unchanged",
                fingerprint,
                window_coverage=plan.coverage.to_dict(),
            )
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
        return Candidate.of(same, unchanged=True)
    train, holdout = read_frame(lake, plan.train_key), read_frame(lake, plan.holdout_key)
    best = best_trial(list(results), spec.gate.primary)
    model = fit_final(spec, best.trial, train, best.threshold, plan.classes)
    x_holdout, y_holdout = split_xy(holdout, spec, plan.classes)
    outputs = model.outputs(x_holdout)
    metrics = evaluate_outputs(spec.task, y_holdout.to_numpy(), outputs, model.threshold)
    data = dump_model(model, {"use_case": use_case, "ds": ds.isoformat(), "trial": best.trial.trial_id})
    uri, sha = store_model(lake, use_case, data)
    report_lineage(read=[lake.uri(plan.train_key), lake.uri(plan.holdout_key)], wrote=[uri])
    version = registry.register(
        NewVersion(
            use_case=use_case,
            run_id=run.run_id,
            ds=ds,
            window_start=plan.window[0],
            window_end=plan.window[1],
            holdout_start=plan.holdout[0],
            holdout_end=plan.holdout[1],
            family=best.trial.family,
            params=dict(best.trial.params),
            threshold=model.threshold,
            metrics=metrics,
            cv_metrics=dict(best.metrics),
            trials=[r.to_dict() for r in results],
            chosen_trial=best.trial.trial_id,
            reference=build_reference(train, spec)
            .with_feature(prediction_reference(outputs, plan.classes))
            .to_dict(),
            library_versions=library_versions(),
            code_version=code_version(),
            artifact_uri=uri,
            sha256=sha,
            fingerprint=fingerprint,
            curves=task_curves(spec.task, y_holdout.to_numpy(), outputs, model.threshold, plan.classes),
            importance=permutation_importances(
                model, x_holdout, y_holdout, spec.gate.primary, spec.training.random_state
            ),
            row_counts={"train": len(train), "holdout": len(holdout)},
        )
    )
    registry.record_training_run(
        TrainingRun(
            use_case,
            run.run_id,
            ds,
            version.version,
            "registered",
            fingerprint,
            window_coverage=plan.coverage.to_dict(),
        )
    )
    card = write_card(lake, registry, spec, version.version)
    log.info(
        "%s: registered v%d (%s) holdout %s; card %s",
        use_case,
        version.version,
        best.trial.trial_id,
        metrics,
        card,
    )
    return Candidate.of(version, unchanged=False)


def gate(
    run: RunFacts, plan: TrainingPlan, candidate: Candidate, stores: Stores, alert: RejectionAlert
) -> bool:
    """Score the champion on the candidate's holdout, decide, store the decision and rewrite the
    candidate's model card with it; True to promote.

    A rejection is also passed to `alert` (the DAG sends it through include/alerting.py). An
    `unchanged` candidate (an existing version, see `fit_and_register`) is not judged again: its
    decision stands.
    """
    from include.io.lake import read_frame
    from include.registry.model_card import write_card
    from include.registry.registry import OLDER_THAN_CHAMPION
    from include.training.gate import GateDecision

    run.check_spec(plan.spec_sha256)
    spec, registry, use_case = run.spec, stores.registry, run.use_case
    version = registry.get(use_case, candidate.version)
    if candidate.unchanged:
        log.info("%s v%d is unchanged (%s): not judged again", use_case, version.version, version.status)
        return False
    champion = registry.champion(use_case)
    versions = {
        "candidate_version": version.version,
        "champion_version": champion.version if champion else None,
    }
    if champion is not None and champion.ds > version.ds:
        older = f"trained as of {version.ds}, champion v{champion.version} as of {champion.ds}"
        reasons = [f"{OLDER_THAN_CHAMPION} ({older})"]
        registry.record_decision(
            version, champion, GateDecision(False, tuple(reasons), version.metrics, None)
        )
        write_card(stores.lake, registry, spec, version.version)
        log.info("%s v%d: %s", use_case, version.version, reasons[0])
        alert(reasons, versions)
        return False
    holdout = read_frame(stores.lake, plan.holdout_key)
    decision, champion_curves = judge(spec, holdout, stores.lake, version, champion, stores.platform, run.ds)
    registry.record_decision(version, champion, decision, champion_curves)
    # The registry keeps no fairness figures: the card takes them from the decision.
    write_card(stores.lake, registry, spec, version.version, decision.to_dict()["fairness"])
    log.info("%s v%d gate: %s — %s", use_case, version.version, decision.passed, "; ".join(decision.reasons))
    if not decision.passed:
        alert(list(decision.reasons), versions)
    return decision.passed


def judge(
    spec: UseCase,
    holdout: pd.DataFrame,
    lake: ObjectStore,
    candidate: ModelVersion,
    champion: ModelVersion | None,
    platform: sa.Engine | None = None,
    ds: dt.date | None = None,
) -> tuple[GateDecision, dict[str, Any] | None]:
    """Score both models' files on the holdout and decide on their paired bootstrap bounds; the
    decision, and the champion's curves on that holdout (for the UI page; None without a champion).
    With `gate.backtest` and a champion, both are also judged on the holdout's days matured by the
    run's day `ds` (`include.training.backtest`, outcomes from `platform`). With `gate.fairness`,
    the candidate's figures per protected group (`include.training.fairness`) go in the decision.

    Both are loaded like every reader loads them (`load_version_model`, sha256 checked), so the gate
    judges the very files that will score; the resamples are seeded by `training.random_state`, so a
    rerun decides the same.
    """
    from include.registry.model_files import load_version_model
    from include.training.compare import Scored, metric_bounds, slice_gains
    from include.training.curves import task_curves
    from include.training.fairness import group_fairness
    from include.training.gate import decide
    from include.training.metrics import evaluate_outputs
    from include.training.preprocess import split_xy

    candidate_model = load_version_model(lake, candidate).model
    classes = candidate_model.classes
    x_holdout, y_holdout = split_xy(holdout, spec, classes)

    def scored(version: ModelVersion) -> Scored:
        model = candidate_model if version is candidate else load_version_model(lake, version).model
        outputs = model.outputs(x_holdout)
        if classes is not None:  # the champion's columns in the candidate's class order
            outputs = aligned(outputs, model.classes or (), classes)
        return Scored(outputs, model.threshold, regression=spec.task == "regression")

    mine = scored(candidate)
    theirs = scored(champion) if champion is not None else None
    tested = None
    if spec.gate.backtest is not None and champion is not None and platform is not None and ds is not None:
        models = [candidate_model, load_version_model(lake, champion).model]
        tested = _backtest(spec, holdout, platform, ds, candidate, models)
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
        labels = y_holdout.to_numpy()
        champion_metrics = evaluate_outputs(spec.task, labels, theirs.proba, theirs.threshold)
        champion_curves = task_curves(spec.task, labels, theirs.proba, theirs.threshold, classes)
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
    fairness = []
    if gate.fairness is not None:
        fairness = group_fairness(
            y_holdout.to_numpy(),
            mine,
            {column: holdout[column].tolist() for column in gate.fairness.attributes},
            gate.confidence,
            gate.resamples,
            spec.training.random_state,
            gate.min_slice_rows,
        )
    decision = decide(
        candidate.metrics, champion_metrics, gate, levels, differences, slices, tested, fairness
    )
    return decision, champion_curves


def _backtest(
    spec: UseCase,
    holdout: pd.DataFrame,
    platform: sa.Engine,
    ds: dt.date,
    candidate: ModelVersion,
    models: list[FittedModel],
) -> Backtest:
    """Both models (`models`: the candidate's, the champion's) on the holdout's matured days."""
    from include.training.backtest import Backtest, backtest, backtest_range, matured_rows
    from include.training.compare import Scored
    from include.training.preprocess import split_xy

    first, last = backtest_range(spec, ds, candidate.holdout_start)
    rows = matured_rows(spec, holdout, platform, ds, first, last)
    if rows.empty:
        return Backtest(first, last, (), None)
    classes = models[0].classes
    x, y = split_xy(rows, spec, classes)
    sides = []
    for model in models:
        outputs = model.outputs(x)
        if classes is not None:
            outputs = aligned(outputs, model.classes or (), classes)
        sides.append(Scored(outputs, model.threshold, regression=spec.task == "regression"))
    return backtest(spec, rows, y.to_numpy(), *sides, first, last, spec.training.random_state)


def promote(
    run: RunFacts, candidate: Candidate, stores: Stores, approved_by: str | None = None
) -> dict[str, Any]:
    """Move the champion alias to the candidate, expecting the champion the gate compared it with
    (so an approval given after another run moved the champion promotes nothing, and says so).
    `approved_by` names the person who approved, when the spec asks for an approval."""
    registry, use_case = stores.registry, run.use_case
    decision = registry.decision(use_case, candidate.version)
    if decision is None or not decision.passed:
        raise ValueError(f"{use_case} v{candidate.version}: no passed gate decision to promote on")
    reason = "passed the gate: " + "; ".join(decision.reasons)
    if approved_by is None:
        actor, kind = f"{run.spec.train_dag_id} run {run.run_id}", "gate"
    else:
        actor, kind = approved_by, "approval"
        reason = f"approved in {run.spec.train_dag_id} run {run.run_id}; {reason}"
    promotion = registry.promote(use_case, candidate.version, decision.champion_version, actor, reason, kind)
    if not promotion.promoted:
        registry.set_status(use_case, candidate.version, "rejected", promotion.reason)
    log.info("%s v%d: %s", use_case, candidate.version, promotion.reason)
    return {"promoted": promotion.promoted, "reason": promotion.reason, "version": candidate.version}


def approval_request(run: RunFacts, candidate: Candidate, stores: Stores, page_url: str) -> str:
    """What the person asked to approve reads (Markdown): the version, the champion it would
    replace, the gate's reasons with their bounds, and the version's page at `page_url`."""
    registry = stores.registry
    version = registry.get(run.use_case, candidate.version)
    decision = registry.decision(run.use_case, candidate.version)
    replaces = f"v{decision.champion_version}" if decision and decision.champion_version else "no champion"
    primary = run.spec.gate.primary
    lines = [
        f"**{run.use_case} v{version.version}** ({version.family}, trained as of {version.ds}) "
        f"passed its gate and would replace {replaces}.",
        "",
        f"Holdout {primary}: {version.metrics.get(primary, float('nan')):.4f}.",
        "",
        "The gate's rules:",
        *(f"- {reason}" for reason in (decision.reasons if decision else [])),
        "",
        f"Approve to promote it, reject to keep {replaces}. The version's page: {page_url}",
    ]
    return "\n".join(lines)


class NotApproved(Exception):
    """The person rejected the candidate, or did not answer in time; the reason is recorded."""


def approved_by(run: RunFacts, candidate: Candidate, answer: dict[str, Any] | None, stores: Stores) -> str:
    """Who approved the candidate, from the approval task's answer.

    Raises:
        NotApproved: when it was rejected (naming who) or not answered in time; the version is then
            recorded as rejected with that reason.
    """
    user = (answer or {}).get("responded_by_user") or {}
    who = user.get("name") or user.get("id")
    if answer and "Approve" in (answer.get("chosen_options") or []) and who:
        return who
    hours = run.spec.gate.approval.timeout_hours if run.spec.gate.approval else 0
    reason = f"not approved: rejected by {who}" if who else f"not approved: no answer within {hours:g} hours"
    stores.registry.set_status(run.use_case, candidate.version, "rejected", reason)
    log.info("%s v%d: %s", run.use_case, candidate.version, reason)
    raise NotApproved(reason)


def aligned(proba: np.ndarray, classes: Sequence[object], order: Sequence[object]) -> np.ndarray:
    """A multiclass model's probabilities with its columns in `order`; a class it does not know
    gets probability 0 (a champion trained before the class was seen)."""
    import numpy as np

    column = {c: i for i, c in enumerate(classes)}
    out = np.zeros((proba.shape[0], len(order)))
    for j, c in enumerate(order):
        if c in column:
            out[:, j] = proba[:, column[c]]
    return out
