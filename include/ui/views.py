"""What each page of the UI shows, as pydantic models: the JSON API's bodies and the templates' input.

Each builder reads through the shared read side (`Registry`, `include.platform.queries`) and shapes
the records for a page; no SQL here, no pandas, no recomputed curve (curves are stored at training
and gate time). A version's detail and a gate decision are the registry's read models
(`include.registry.read_models`), the same the CLI prints and the scoring service returns.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field

from include.platform import queries
from include.registry import read_models
from include.registry.read_models import DecisionDetail, VersionDetail, decision_detail
from include.registry.registry import MAX_VERSION, ChampionChange, ModelVersion, Registry
from include.usecases.spec import UseCase


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
    # Every move of the champion, oldest first: who, when, from what to what, why.
    audit: list[ChampionChange]


class ChampionMoveRequest(BaseModel):
    """A manual move of the champion: to `version`, from scoring day `ds` on (default: today, UTC)."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, le=MAX_VERSION)
    kind: Literal["promote", "rollback"]
    reason: str = Field(min_length=1, max_length=1000)
    force: bool = False
    ds: dt.date | None = None


class GateDecisions(BaseModel):
    use_case: str
    primary_metric: str
    decisions: list[DecisionDetail]


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


class Ingest(BaseModel):
    use_case: str
    sources: list[str]
    days: list[IngestDay]
    top_reasons: list[queries.QuarantineReason]


class Performance(BaseModel):
    """The realised performance of each matured scored day, the outcome ingest and the decay
    retrain requests; `maturity_days` is None for a use case without outcomes."""

    use_case: str
    primary_metric: str
    maturity_days: int | None
    days: list[queries.RealisedDay]
    outcome_days: list[queries.OutcomeRun]
    decays: list[queries.RetrainRequest]


class UseCaseLink(BaseModel):
    name: str
    description: str


def overview(engine: sa.Engine, spec: UseCase) -> Overview:
    """The champion, the timeline of champions and every version with its status."""
    registry = Registry(engine)
    versions = registry.versions(spec.name)
    champion = registry.champion(spec.name)
    history = sorted(registry.champion_history(spec.name), key=lambda c: (c.ds, c.entry))
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
        audit=registry.champion_history(spec.name),
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
    return read_models.version_detail(Registry(engine), spec, version)


def gate_decisions(engine: sa.Engine, spec: UseCase) -> GateDecisions:
    """Every gate decision, newest candidate first, both models' metrics side by side."""
    records = Registry(engine).decisions(spec.name)
    return GateDecisions(
        use_case=spec.name,
        primary_metric=spec.gate.primary,
        decisions=[decision_detail(r) for r in reversed(records)],
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
        top_reasons=queries.quarantine_reasons(engine, spec.name),
    )


def performance(engine: sa.Engine, spec: UseCase) -> Performance:
    """Each matured day's realised figures beside the expectation; outcome ingests; decay requests."""
    return Performance(
        use_case=spec.name,
        primary_metric=spec.gate.primary,
        maturity_days=spec.outcomes.maturity_days if spec.outcomes else None,
        days=queries.realised_records(engine, spec.name),
        outcome_days=queries.outcome_run_records(engine, spec.name),
        decays=[r for r in queries.retrain_request_records(engine, spec.name) if r.reason == "decay"],
    )
