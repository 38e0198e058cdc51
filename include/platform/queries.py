"""Read queries over the run records, returning typed objects: the one read side every reader shares.

The CLI prints them, the UI page serves them and the tests check them; the registry's own reads
(versions, the champion, its history, gate decisions) are `include.registry.registry.Registry`'s.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields
from typing import Any, TypeVar

import sqlalchemy as sa

from include.platform.tables import (
    drift_measures,
    ingest_runs,
    outcome_runs,
    outcomes,
    predictions,
    realised_performance,
    retrain_requests,
    score_runs,
)

T = TypeVar("T")


@dataclass(frozen=True)
class IngestRun:
    """One day's ingest record: rows read and quarantined per source, rows written."""

    use_case: str
    ds: dt.date
    run_id: str
    rows_read: dict[str, int]
    rows_quarantined: dict[str, int]
    rows_joined: int
    rows_written: int
    partition_uri: str
    quarantine_uri: str | None
    recorded_at: dt.datetime
    quarantine_reasons: dict[str, dict[str, int]] | None


@dataclass(frozen=True)
class ScoreRun:
    """One day's scoring record: rows in = scored + rejected, the model, the score distribution."""

    use_case: str
    ds: dt.date
    run_id: str
    model_version: int
    model_sha256: str
    threshold: float
    rows_in: int
    rows_scored: int
    rows_rejected: int
    rejected_reasons: dict[str, int]
    score_mean: float | None
    positive_rate: float | None
    score_histogram: list[int]
    drift_level: str
    predictions_uri: str
    recorded_at: dt.datetime


@dataclass(frozen=True)
class ScoredDay:
    """What the predictions table holds for one day, beside that day's run record."""

    ds: dt.date
    rows: int
    model_version: int
    model_versions: int
    score_min: float
    score_mean: float
    score_max: float
    positive_rate: float | None
    run: ScoreRun | None


@dataclass(frozen=True)
class DriftMeasure:
    """One feature's drift on one day, against the training reference of `model_version`."""

    use_case: str
    ds: dt.date
    feature: str
    model_version: int
    kind: str
    psi: float
    psi_noise: float | None
    level: str
    buckets: list[str]
    reference_shares: list[float]
    actual_shares: list[float]
    rows: int


@dataclass(frozen=True)
class DriftCell:
    """One feature's PSI and grade on one day: a cell of the drift heatmap."""

    ds: dt.date
    feature: str
    psi: float
    level: str


@dataclass(frozen=True)
class OutcomeRun:
    """One day of observed outcomes: rows read, kept and quarantined (by reason)."""

    use_case: str
    ds: dt.date
    run_id: str
    rows_read: int
    rows_kept: int
    rows_quarantined: int
    quarantine_reasons: dict[str, int]
    recorded_at: dt.datetime


@dataclass(frozen=True)
class RealisedDay:
    """A scored day's realised performance: per metric its estimate and bounds, beside the holdout
    figure of the version that scored it, and the share of its rows whose outcome has arrived."""

    use_case: str
    ds: dt.date
    model_version: int
    evaluated_through: dt.date
    rows_scored: int
    rows_matched: int
    primary_metric: str
    metrics: dict[str, dict[str, float | None]]
    expected: dict[str, float | None]
    decayed: bool
    run_id: str

    @property
    def coverage(self) -> float:
        return self.rows_matched / self.rows_scored if self.rows_scored else 0.0


@dataclass(frozen=True)
class QuarantineReason:
    """Rows quarantined for one reason from one source, summed over the ingest run records."""

    source: str
    reason: str
    rows: int
    days: int


def row_as(cls: type[T], row: sa.RowMapping) -> T:
    """A row as the dataclass whose fields name its columns."""
    return cls(**{f.name: row[f.name] for f in fields(cls)})


def _of(table: sa.Table, use_case: str, ds: dt.date | None) -> sa.ColumnElement[bool]:
    """A use case's rows, of one day when `ds` is given."""
    return (table.c.use_case == use_case) & (table.c.ds == ds if ds else sa.true())


def _select(engine: sa.Engine, cls: type[T], query: sa.Select) -> list[T]:
    with engine.connect() as conn:
        return [row_as(cls, row) for row in conn.execute(query).mappings()]


def ingest_run_records(engine: sa.Engine, use_case: str, ds: dt.date | None = None) -> list[IngestRun]:
    """The ingest run records, one per day, oldest first."""
    query = sa.select(ingest_runs).where(_of(ingest_runs, use_case, ds)).order_by(ingest_runs.c.ds)
    return _select(engine, IngestRun, query)


def score_run_records(engine: sa.Engine, use_case: str, ds: dt.date | None = None) -> list[ScoreRun]:
    """The scoring run records, one per day, oldest first."""
    query = sa.select(score_runs).where(_of(score_runs, use_case, ds)).order_by(score_runs.c.ds)
    return _select(engine, ScoreRun, query)


def scored_days(engine: sa.Engine, use_case: str, ds: dt.date | None = None) -> list[ScoredDay]:
    """Each day in the predictions table: rows, model version(s), score range and mean, positive rate."""
    stats = (
        sa.select(
            predictions.c.ds,
            sa.func.count().label("rows"),
            sa.func.min(predictions.c.model_version).label("model_version"),
            sa.func.count(sa.distinct(predictions.c.model_version)).label("model_versions"),
            sa.func.min(predictions.c.score).label("score_min"),
            sa.func.avg(predictions.c.score).label("score_mean"),
            sa.func.max(predictions.c.score).label("score_max"),
            (sa.func.sum(predictions.c.predicted_label) / sa.func.count().cast(sa.Float)).label(
                "positive_rate"
            ),
        )
        .where(_of(predictions, use_case, ds))
        .group_by(predictions.c.ds)
        .order_by(predictions.c.ds)
    )
    runs = {run.ds: run for run in score_run_records(engine, use_case, ds)}
    with engine.connect() as conn:
        found = conn.execute(stats).mappings().all()
    return [
        ScoredDay(
            ds=r["ds"],
            rows=r["rows"],
            model_version=r["model_version"],
            model_versions=r["model_versions"],
            score_min=float(r["score_min"]),
            score_mean=float(r["score_mean"]),
            score_max=float(r["score_max"]),
            positive_rate=None if r["positive_rate"] is None else float(r["positive_rate"]),
            run=runs.get(r["ds"]),
        )
        for r in found
    ]


def drift_of(engine: sa.Engine, use_case: str, ds: dt.date | None = None) -> list[DriftMeasure]:
    """Drift per feature and day (of one day with `ds`), by day, then the highest PSI first."""
    query = (
        sa.select(drift_measures)
        .where(_of(drift_measures, use_case, ds))
        .order_by(drift_measures.c.ds, drift_measures.c.psi.desc(), drift_measures.c.feature)
    )
    return _select(engine, DriftMeasure, query)


def drift_grid(engine: sa.Engine, use_case: str) -> list[DriftCell]:
    """Every feature's PSI and grade on every day, by day then feature (no bucket shares: light)."""
    columns = [drift_measures.c[f.name] for f in fields(DriftCell)]
    query = (
        sa.select(*columns)
        .where(drift_measures.c.use_case == use_case)
        .order_by(drift_measures.c.ds, drift_measures.c.feature)
    )
    return _select(engine, DriftCell, query)


def quarantine_reasons(engine: sa.Engine, use_case: str, top: int = 10) -> list[QuarantineReason]:
    """The `top` most common quarantine reasons over every ingest run record, per source and reason.

    From the per-reason counts each run recorded at ingest (`ingest_runs.quarantine_reasons`).
    """
    query = sa.select(ingest_runs.c.quarantine_reasons).where(ingest_runs.c.use_case == use_case)
    rows: dict[tuple[str, str], int] = {}
    days: dict[tuple[str, str], int] = {}
    with engine.connect() as conn:
        for (recorded,) in conn.execute(query):
            for source, reasons in (recorded or {}).items():  # JSON null: recorded before 0013
                for reason, n in reasons.items():
                    rows[source, reason] = rows.get((source, reason), 0) + n
                    days[source, reason] = days.get((source, reason), 0) + 1
    ranked = sorted(rows, key=lambda key: (-rows[key], key))[:top]
    return [
        QuarantineReason(source, reason, rows[source, reason], days[source, reason])
        for source, reason in ranked
    ]


def worst_drift_by_day(engine: sa.Engine, use_case: str) -> list[DriftMeasure]:
    """Each day's worst feature: the most severe level, then the highest PSI (a large PSI within the
    noise of a small day is less worrying than a warn)."""
    severity = {"ok": 0, "warn": 1, "alert": 2}
    worst: dict[dt.date, DriftMeasure] = {}
    for measure in drift_of(engine, use_case):  # by day, highest PSI first
        held = worst.setdefault(measure.ds, measure)
        if severity.get(measure.level, 0) > severity.get(held.level, 0):
            worst[measure.ds] = measure
    return list(worst.values())


@dataclass(frozen=True)
class RetrainRequest:
    """A retrain asked for by a drifting day (with the features over the alert level) or by decay
    of the realised performance (with the realised primary metric)."""

    use_case: str
    ds: dt.date
    run_id: str
    features: dict[str, float]
    requested_at: dt.datetime | None
    reason: str


def retrain_request_records(engine: sa.Engine, use_case: str) -> list[RetrainRequest]:
    """Every retrain request of the use case, oldest day first."""
    query = (
        sa.select(retrain_requests)
        .where(retrain_requests.c.use_case == use_case)
        .order_by(retrain_requests.c.ds)
    )
    return _select(engine, RetrainRequest, query)


def alerts_by_day(
    conn: sa.Connection, use_case: str, first: dt.date, last: dt.date
) -> dict[dt.date, frozenset[str]]:
    """The features graded "alert" on each scored day in [first, last]; a scored day with none has an
    empty set, a day not scored is missing."""
    scored = conn.execute(
        sa.select(score_runs.c.ds).where(
            (score_runs.c.use_case == use_case) & score_runs.c.ds.between(first, last)
        )
    ).scalars()
    alerts: dict[dt.date, set[str]] = {ds: set() for ds in scored}
    alerting = conn.execute(
        sa.select(drift_measures.c.ds, drift_measures.c.feature).where(
            (drift_measures.c.use_case == use_case)
            & drift_measures.c.ds.between(first, last)
            & (drift_measures.c.level == "alert")
        )
    )
    for ds, feature in alerting:
        alerts.setdefault(ds, set()).add(feature)
    return {ds: frozenset(features) for ds, features in alerts.items()}


def as_plain(value: Any) -> Any:
    """A typed record (or a list of them) as JSON-able dicts: dates as ISO text."""
    if isinstance(value, list):
        return [as_plain(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        return {f.name: as_plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, dict):
        return {k: as_plain(v) for k, v in value.items()}
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value


def committed_days(engine: sa.Engine, use_case: str, first: dt.date, last: dt.date) -> set[dt.date]:
    """The days in [first, last] whose ingest run record is written: the days a reader may trust."""
    query = sa.select(ingest_runs.c.ds).where(
        ingest_runs.c.use_case == use_case, ingest_runs.c.ds.between(first, last)
    )
    with engine.connect() as conn:
        return set(conn.execute(query).scalars())


def ingest_record(conn: sa.Connection, use_case: str, ds: dt.date) -> sa.Row | None:
    """The day's ingest record (rows written, quarantined per source, both URIs), if it has one."""
    columns = (
        ingest_runs.c.rows_written,
        ingest_runs.c.rows_quarantined,
        ingest_runs.c.partition_uri,
        ingest_runs.c.quarantine_uri,
    )
    return conn.execute(sa.select(*columns).where(_of(ingest_runs, use_case, ds))).first()


def last_retrain_request(
    conn: sa.Connection, use_case: str, besides: dt.date | None = None
) -> dt.date | None:
    """The day of the use case's latest retrain request (other than `besides`'s)."""
    which = retrain_requests.c.use_case == use_case
    if besides is not None:
        which &= retrain_requests.c.ds != besides
    return conn.execute(sa.select(sa.func.max(retrain_requests.c.ds)).where(which)).scalar()


def outcome_run_records(engine: sa.Engine, use_case: str) -> list[OutcomeRun]:
    """The outcome ingest records, one per day of observation, oldest first."""
    query = sa.select(outcome_runs).where(_of(outcome_runs, use_case, None)).order_by(outcome_runs.c.ds)
    return _select(engine, OutcomeRun, query)


def realised_records(
    engine: sa.Engine, use_case: str, first: dt.date | None = None, last: dt.date | None = None
) -> list[RealisedDay]:
    """The realised performance of the scored days in [first, last] (default: all), oldest first."""
    which = realised_performance.c.use_case == use_case
    if first is not None:
        which &= realised_performance.c.ds >= first
    if last is not None:
        which &= realised_performance.c.ds <= last
    return _select(engine, RealisedDay, sa.select(realised_performance).where(which).order_by("ds"))


def scored_entities(
    conn: sa.Connection, use_case: str, ids: list[str], first: dt.date, last: dt.date, chunk: int = 5000
) -> set[str]:
    """Which of `ids` have a prediction on a day in [first, last]."""
    found: set[str] = set()
    for start in range(0, len(ids), chunk):
        query = (
            sa.select(predictions.c.entity_id)
            .distinct()
            .where(
                (predictions.c.use_case == use_case)
                & predictions.c.ds.between(first, last)
                & predictions.c.entity_id.in_(ids[start : start + chunk])
            )
        )
        found.update(conn.execute(query).scalars())
    return found


def day_predictions(conn: sa.Connection, use_case: str, ds: dt.date) -> list[sa.Row]:
    """A scored day's stored predictions: entity, version, score, class probabilities (multiclass)."""
    columns = (predictions.c.entity_id, predictions.c.model_version, predictions.c.score)
    query = sa.select(*columns, predictions.c.class_probabilities).where(_of(predictions, use_case, ds))
    return list(conn.execute(query.order_by(predictions.c.entity_id)))


def observed_outcomes(conn: sa.Connection, use_case: str, first: dt.date, last: dt.date) -> list[sa.Row]:
    """The outcomes observed on a day in [first, last]: entity, day observed, value."""
    query = sa.select(outcomes.c.entity_id, outcomes.c.observed_ds, outcomes.c.outcome).where(
        (outcomes.c.use_case == use_case) & outcomes.c.observed_ds.between(first, last)
    )
    return list(conn.execute(query))


def scored_days_between(conn: sa.Connection, use_case: str, first: dt.date, last: dt.date) -> list[dt.date]:
    """The days in [first, last] with a scoring run record, oldest first."""
    query = sa.select(score_runs.c.ds).where(
        (score_runs.c.use_case == use_case) & score_runs.c.ds.between(first, last)
    )
    return list(conn.execute(query.order_by(score_runs.c.ds)).scalars())
