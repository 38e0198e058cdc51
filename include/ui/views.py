"""What each page of the UI shows, as pydantic models: the JSON API's bodies and the templates' input.

Each builder reads through the shared read side (`Registry`, `include.platform.queries`) and shapes
the records for a page; no SQL here, no pandas, no recomputed curve (curves are stored at training
and gate time).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from pydantic import BaseModel

from include.platform import queries
from include.registry.registry import GateRecord, ModelVersion, Registry
from include.usecases.spec import UseCase


class RocPoints(BaseModel):
    fpr: list[float]
    tpr: list[float]


class PrPoints(BaseModel):
    recall: list[float]
    precision: list[float]


class Confusion(BaseModel):
    tn: int
    fp: int
    fn: int
    tp: int


class Curves(BaseModel):
    """A model's holdout curves and its confusion matrix at `threshold` (stored, never recomputed)."""

    roc: RocPoints
    pr: PrPoints
    confusion: Confusion
    threshold: float
    rows: int


class VersionRow(BaseModel):
    """One registered version, as the overview lists it."""

    version: int
    status: str
    status_reason: str | None
    ds: dt.date
    family: str
    primary: float | None
    metrics: dict[str, float]
    sha256: str
    created_at: dt.datetime | None


class Champion(BaseModel):
    version: int
    family: str
    trained_as_of: dt.date
    window: tuple[dt.date, dt.date]
    holdout: tuple[dt.date, dt.date]
    threshold: float
    metrics: dict[str, float]
    sha256: str


class ChampionSpan(BaseModel):
    """A version's time as champion: from the first scoring day it served to the next champion's."""

    version: int
    since: dt.date
    until: dt.date | None
    previous_version: int | None
    promoted_at: dt.datetime | None


class Overview(BaseModel):
    use_case: str
    description: str
    primary_metric: str
    champion: Champion | None
    champions: list[ChampionSpan]
    versions: list[VersionRow]


class TrialRow(BaseModel):
    """One cross-validation trial: the family, its parameters, the CV mean and spread."""

    trial_id: str
    family: str
    params: dict[str, Any]
    metric: str
    cv_mean: float
    cv_std: float
    threshold: float
    duration_seconds: float
    chosen: bool


class Lineage(BaseModel):
    dag_id: str
    run_id: str
    run_path: str
    code_version: str
    library_versions: dict[str, str]
    fingerprint: str | None
    artifact_uri: str
    sha256: str


class MetricRow(BaseModel):
    """One metric of a gate decision: both models on the same holdout, and which is better."""

    metric: str
    candidate: float | None
    champion: float | None
    difference: float | None
    candidate_better: bool | None
    # The paired gain (+: candidate better, whatever the metric's direction) and its bounds at the
    # gate's confidence, for the metrics the gate judged.
    gain: float | None = None
    gain_lower: float | None = None
    gain_upper: float | None = None


class SliceRow(BaseModel):
    """The primary metric's paired gain on one slice of the holdout, with its bounds."""

    column: str
    value: str
    rows: int
    gain: float | None
    lower: float | None
    upper: float | None


class GateDecision(BaseModel):
    candidate_version: int
    champion_version: int | None
    ds: dt.date
    run_id: str
    passed: bool
    reasons: list[str]
    confidence: float | None
    metrics: list[MetricRow]
    slices: list[SliceRow]
    decided_at: dt.datetime | None


class VersionDetail(BaseModel):
    use_case: str
    version: int
    status: str
    status_reason: str | None
    family: str
    params: dict[str, Any]
    trained_as_of: dt.date
    window: tuple[dt.date, dt.date]
    holdout: tuple[dt.date, dt.date]
    threshold: float
    metrics: dict[str, float]
    cv_metrics: dict[str, float]
    curves: Curves | None
    decision: GateDecision | None
    champion_curves: Curves | None
    trials: list[TrialRow]
    lineage: Lineage


class GateDecisions(BaseModel):
    use_case: str
    primary_metric: str
    decisions: list[GateDecision]


class Scoring(BaseModel):
    use_case: str
    psi_warn: float
    psi_alert: float
    days: list[queries.ScoreRun]
    features: list[str]
    drift: list[queries.DriftCell]


class IngestDay(BaseModel):
    ds: dt.date
    run_id: str
    rows_read: dict[str, int]
    rows_quarantined: dict[str, int]
    rows_written: int
    quarantine_reasons: dict[str, dict[str, int]]


class QuarantineReason(BaseModel):
    source: str
    reason: str
    rows: int
    days: int


class Ingest(BaseModel):
    use_case: str
    sources: list[str]
    days: list[IngestDay]
    top_reasons: list[QuarantineReason]


class UseCaseLink(BaseModel):
    name: str
    description: str


def _plain(record: Any) -> dict[str, Any]:
    return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}


def overview(engine: sa.Engine, spec: UseCase) -> Overview:
    """The champion, the timeline of champions and every version with its status."""
    registry = Registry(engine)
    versions = registry.versions(spec.name)
    champion = registry.champion(spec.name)
    history = sorted(registry.champion_history(spec.name), key=lambda c: (c.ds, c.version))
    spans = [
        ChampionSpan(
            version=change.version,
            since=change.ds,
            until=history[i + 1].ds if i + 1 < len(history) else None,
            previous_version=change.previous_version,
            promoted_at=change.promoted_at,
        )
        for i, change in enumerate(history)
    ]
    return Overview(
        use_case=spec.name,
        description=spec.description,
        primary_metric=spec.gate.primary,
        champion=None if champion is None else _champion(champion),
        champions=spans,
        versions=[_row(v, spec.gate.primary) for v in reversed(versions)],
    )


def _champion(version: ModelVersion) -> Champion:
    return Champion(
        version=version.version,
        family=version.family,
        trained_as_of=version.ds,
        window=(version.window_start, version.window_end),
        holdout=(version.holdout_start, version.holdout_end),
        threshold=version.threshold,
        metrics=version.metrics,
        sha256=version.sha256,
    )


def _row(version: ModelVersion, primary: str) -> VersionRow:
    return VersionRow(
        version=version.version,
        status=version.status,
        status_reason=version.status_reason,
        ds=version.ds,
        family=version.family,
        primary=version.metrics.get(primary),
        metrics=version.metrics,
        sha256=version.sha256,
        created_at=version.created_at,
    )


def version_detail(engine: sa.Engine, spec: UseCase, version: int) -> VersionDetail:
    """One version: its curves beside its judge's, confusion matrix, trials, windows and lineage.

    Raises:
        LookupError: when the use case has no such version.
    """
    registry = Registry(engine)
    found = registry.get(spec.name, version)
    record = registry.decision(spec.name, version)
    chosen = _best_trial(found.trials)
    return VersionDetail(
        use_case=spec.name,
        version=found.version,
        status=found.status,
        status_reason=found.status_reason,
        family=found.family,
        params=found.params,
        trained_as_of=found.ds,
        window=(found.window_start, found.window_end),
        holdout=(found.holdout_start, found.holdout_end),
        threshold=found.threshold,
        metrics=found.metrics,
        cv_metrics=found.cv_metrics,
        curves=found.curves,
        decision=None if record is None else _decision(record),
        champion_curves=None if record is None else record.champion_curves,
        trials=[_trial(t, t is chosen) for t in found.trials],
        lineage=Lineage(
            dag_id=spec.train_dag_id,
            run_id=found.run_id,
            run_path=f"/dags/{spec.train_dag_id}/runs/{quote(found.run_id, safe='')}",
            code_version=found.code_version,
            library_versions=found.library_versions,
            fingerprint=found.fingerprint,
            artifact_uri=found.artifact_uri,
            sha256=found.sha256,
        ),
    )


def _best_trial(trials: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The trial the version was refitted from: the best CV mean of the primary metric."""
    from include.training.metrics import direction

    return max(trials, key=lambda t: t["primary_mean"] * direction(t["primary"]), default=None)


def _trial(result: dict[str, Any], chosen: bool) -> TrialRow:
    return TrialRow(
        trial_id=result["trial"]["trial_id"],
        family=result["trial"]["family"],
        params=result["trial"]["params"],
        metric=result["primary"],
        cv_mean=result["primary_mean"],
        cv_std=result["primary_std"],
        threshold=result["threshold"],
        duration_seconds=result["duration_seconds"],
        chosen=chosen,
    )


def _decision(record: GateRecord) -> GateDecision:
    from include.training.metrics import direction  # sklearn: loaded by the API server on first use only

    champion = record.champion_metrics or {}
    evidence = record.evidence or {}
    bounds = evidence.get("differences", {})
    metrics = []
    for name, value in record.candidate_metrics.items():
        other = champion.get(name)
        difference = None if other is None else value - other
        bound = bounds.get(name, {})
        metrics.append(
            MetricRow(
                metric=name,
                candidate=value,
                champion=other,
                difference=difference,
                candidate_better=None if not difference else difference * direction(name) > 0,
                gain=bound.get("estimate"),
                gain_lower=bound.get("lower"),
                gain_upper=bound.get("upper"),
            )
        )
    slices = [
        SliceRow(
            column=s["column"],
            value=s["value"],
            rows=s["rows"],
            gain=s["estimate"],
            lower=s["lower"],
            upper=s["upper"],
        )
        for s in evidence.get("slices", [])
    ]
    plain = _plain(record)
    return GateDecision(
        **{k: plain[k] for k in GateDecision.model_fields if k in plain}, metrics=metrics, slices=slices
    )


def gate_decisions(engine: sa.Engine, spec: UseCase) -> GateDecisions:
    """Every gate decision, newest candidate first, both models' metrics side by side."""
    records = Registry(engine).decisions(spec.name)
    return GateDecisions(
        use_case=spec.name,
        primary_metric=spec.gate.primary,
        decisions=[_decision(r) for r in reversed(records)],
    )


def scoring(engine: sa.Engine, spec: UseCase) -> Scoring:
    """Each scored day's record, and the drift grid: features × days with PSI and grade."""
    runs = queries.score_run_records(engine, spec.name)
    grid = queries.drift_grid(engine, spec.name)
    return Scoring(
        use_case=spec.name,
        psi_warn=spec.drift.psi_warn,
        psi_alert=spec.drift.psi_alert,
        days=runs,
        features=sorted({c.feature for c in grid}),
        drift=grid,
    )


def ingest(engine: sa.Engine, spec: UseCase) -> Ingest:
    """Each ingested day's rows per source, and the most common quarantine reasons."""
    records = queries.ingest_run_records(engine, spec.name)
    return Ingest(
        use_case=spec.name,
        sources=[s.name for s in spec.sources],
        days=[
            IngestDay(
                ds=r.ds,
                run_id=r.run_id,
                rows_read=r.rows_read,
                rows_quarantined=r.rows_quarantined,
                rows_written=r.rows_written,
                quarantine_reasons=r.quarantine_reasons or {},
            )
            for r in records
        ],
        top_reasons=[QuarantineReason(**_plain(q)) for q in queries.quarantine_reasons(engine, spec.name)],
    )
