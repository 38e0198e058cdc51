"""The evaluate DAG's stages: ingest the day's observed outcomes, judge every matured scored day
against them, and ask for a retrain when the realised performance has decayed.

For the run's day E, the matured scored days are those up to E - `outcomes.maturity_days`; the last
`outcomes.lookback_days` of them are judged again on every run, each prediction against its
entity's earliest outcome observed from the scored day up to E (never later: a backfill sees what
was known on its day). A day's row is rewritten only when its figures change and never by an
evaluation older than the one that wrote it (checked under the write lock: evaluations may run at
once), so reruns, backfills and late batches touch only their days.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from include.runs import XComResult

if TYPE_CHECKING:
    from include.registry.registry import ModelVersion
    from include.runs import RunFacts, Stores
    from include.usecases.spec import UseCase

log = logging.getLogger(__name__)

# What a stored day is compared on: a rerun that changes none of them leaves the row as it is.
FIGURES = ("model_version", "rows_scored", "rows_matched", "primary_metric", "metrics", "expected", "decayed")


class OutcomesIngested(XComResult):
    """A day of observation: outcome rows read, kept, and quarantined by reason."""

    ds: dt.date
    rows_read: int
    rows_kept: int
    rows_quarantined: int
    reasons: dict[str, int]


class Evaluated(XComResult):
    """One evaluation: the matured days judged, those whose figures changed, and a decay if any."""

    ds: dt.date
    primary: str
    judged: list[dt.date]
    changed: list[dt.date]
    decaying: list[dt.date]
    realised: dict[str, float | None]
    expected: dict[str, float | None]


def matured_range(spec: UseCase, ds: dt.date) -> tuple[dt.date, dt.date]:
    """The scored days an evaluation on `ds` judges: the last `lookback_days` matured ones."""
    assert spec.outcomes is not None
    last = ds - dt.timedelta(days=spec.outcomes.maturity_days)
    return last - dt.timedelta(days=spec.outcomes.lookback_days - 1), last


def day_scored(run: RunFacts, stores: Stores) -> bool:
    """Whether the run's day has its scoring record (the sensor before the outcomes come in)."""
    from include.platform.queries import scored_days_between

    with stores.platform.connect() as conn:
        scored = bool(scored_days_between(conn, run.use_case, run.ds, run.ds))
    log.info("%s, ds=%s: %s", run.use_case, run.ds, "scored" if scored else "not scored yet")
    return scored


def run_outcome_ingest(run: RunFacts, stores: Stores) -> OutcomesIngested:
    """Read, check and store the outcomes observed on the run's day; record the counts."""
    from include.ingest.sources import read_files_day, read_sql_day
    from include.io.connections import engine_for, store_for
    from include.io.lineage import report_lineage, table_uri
    from include.outcomes.ingest import check_outcomes
    from include.platform.day_swap import replace_rows
    from include.platform.queries import scored_entities
    from include.platform.tables import outcome_runs, outcomes

    spec, ds = run.spec, run.ds
    assert spec.outcomes is not None
    source, rows = spec.outcomes.source, spec.ingest.row_group_rows
    if source.kind == "sql":
        batches = read_sql_day(engine_for(source.conn_id), source, run.partition, rows)
    else:
        batches = read_files_day(store_for(source.conn_id), source, run.partition, rows)
    # An outcome observed on ds can judge a day scored up to lookback + maturity days before it.
    reach = dt.timedelta(days=spec.outcomes.lookback_days + spec.outcomes.maturity_days)
    with stores.platform.connect() as conn:

        def unknown(ids: list[str]) -> set[str]:
            return set(ids) - scored_entities(conn, spec.name, ids, ds - reach, ds)

        day = check_outcomes(spec, batches, unknown, f"outcomes source {source.name}, ds={run.partition.key}")
    key = {"use_case": spec.name, "observed_ds": ds}
    record = {
        "use_case": spec.name,
        "ds": ds,
        "run_id": run.run_id,
        "rows_read": day.rows_read,
        "rows_kept": len(day.kept),
        "rows_quarantined": day.quarantined,
        "quarantine_reasons": day.top_reasons(),
    }
    with stores.platform.begin() as conn:
        rows_kept = [{**key, "entity_id": e, "outcome": v, "run_id": run.run_id} for e, v in day.kept.items()]
        replace_rows(conn, outcomes, key, rows_kept)
        replace_rows(conn, outcome_runs, {"use_case": spec.name, "ds": ds}, [record])
    report_lineage(wrote=[table_uri(stores.platform, outcomes.name)])
    log.info(
        "%s, ds=%s: %d outcomes read, %d kept, %d quarantined %s",
        spec.name,
        ds,
        day.rows_read,
        len(day.kept),
        day.quarantined,
        day.top_reasons(3),
    )
    return OutcomesIngested(
        ds=ds,
        rows_read=day.rows_read,
        rows_kept=len(day.kept),
        rows_quarantined=day.quarantined,
        reasons=day.top_reasons(),
    )


def matched(predictions: pd.DataFrame, observed: pd.DataFrame, scored: dt.date) -> pd.DataFrame:
    """The scored day's predictions with their entity's judging outcome (`earliest_outcomes`)."""
    from include.monitoring.outcomes import earliest_outcomes

    return predictions.merge(earliest_outcomes(observed, scored), on="entity_id", how="inner")


def labels_and_outputs(
    spec: UseCase, version: ModelVersion, rows: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray]:
    """The outcomes as the model's labels and the stored outputs, per task (rows whose outcome is
    not one of a multiclass version's classes are left out)."""
    from include.training.preprocess import label_classes

    if spec.task == "regression":
        return rows["outcome"].astype(float).to_numpy(), rows["score"].to_numpy(dtype=float)
    if spec.task == "binary":
        return (rows["outcome"] == spec.label.positive).astype(int).to_numpy(), rows["score"].to_numpy(float)
    classes = (version.curves or {}).get("classes") or [str(c) for c in label_classes(spec) or ()]
    codes = pd.Categorical(rows["outcome"].astype(str), categories=classes).codes
    known = codes >= 0
    proba = np.array([json.loads(p) for p in rows["class_probabilities"][known]], dtype=float)
    return codes[known].astype(int), proba.reshape(int(known.sum()), len(classes))


def judge_day(
    spec: UseCase, version: ModelVersion, predictions: pd.DataFrame, observed: pd.DataFrame, scored: dt.date
) -> dict[str, Any]:
    """One scored day's figures (the columns of `realised_performance` that `FIGURES` names)."""
    from include.outcomes.realised import day_seed, is_decayed, realised_figures
    from include.usecases.spec import TASK_METRICS

    assert spec.outcomes is not None
    primary = spec.gate.primary
    expected = {m: _finite_or_none(version.metrics.get(m)) for m in TASK_METRICS[spec.task]}
    y, outputs = labels_and_outputs(spec, version, matched(predictions, observed, scored))
    figures = {
        "model_version": version.version,
        "rows_scored": len(predictions),
        "rows_matched": len(y),
        "primary_metric": primary,
        "metrics": {},
        "expected": expected,
        "decayed": False,
    }
    if len(y):
        realised = realised_figures(
            spec.task,
            y,
            outputs,
            version.threshold,
            spec.outcomes.confidence,
            spec.outcomes.resamples,
            day_seed(scored),
        )
        figures["metrics"] = {m: interval.to_dict() for m, interval in realised.items()}
        figures["decayed"] = is_decayed(primary, realised[primary], expected.get(primary))
    return figures


def _finite_or_none(value: Any) -> float | None:
    return float(value) if value is not None and np.isfinite(value) else None


def run_evaluation(run: RunFacts, stores: Stores) -> Evaluated:
    """Judge the matured scored days against the outcomes observed up to the run's day."""
    from include.io.lineage import report_lineage, table_uri
    from include.monitoring.outcomes import OBSERVED_COLUMNS
    from include.outcomes.realised import decaying
    from include.platform.queries import (
        day_predictions,
        observed_outcomes,
        realised_records,
        scored_days_between,
    )

    spec, ds = run.spec, run.ds
    assert spec.outcomes is not None
    first, last = matured_range(spec, ds)
    stored = {r.ds: r for r in realised_records(stores.platform, spec.name, first, last)}
    judged, changed, decayed = [], [], {d: r.decayed for d, r in stored.items()}
    versions: dict[int, ModelVersion] = {}
    with stores.platform.connect() as conn:
        observed = pd.DataFrame(observed_outcomes(conn, spec.name, first, ds), columns=OBSERVED_COLUMNS)
        days = scored_days_between(conn, spec.name, first, last)
        for day in days:
            previous = stored.get(day)
            if previous is not None and previous.evaluated_through > ds:
                continue  # a later evaluation's figures stand (a backfill does not undo them)
            rows = pd.DataFrame(
                day_predictions(conn, spec.name, day),
                columns=["entity_id", "model_version", "score", "class_probabilities"],
            )
            if rows.empty:
                continue
            number = int(rows["model_version"].mode().iloc[0])
            if number not in versions:  # the same version scores most of the judged days
                versions[number] = stores.registry.get(spec.name, number)
            version = versions[number]
            figures = judge_day(spec, version, rows, observed, day)
            judged.append(day)
            decayed[day] = figures["decayed"]
            if previous is None or any(figures[k] != getattr(previous, k) for k in FIGURES):
                row = {
                    "use_case": spec.name,
                    "ds": day,
                    **figures,
                    "evaluated_through": ds,
                    "run_id": run.run_id,
                }
                if store_unless_newer(stores.platform, row):
                    changed.append(day)
    report_lineage(
        read=[table_uri(stores.platform, t) for t in ("predictions", "outcomes")],
        wrote=[table_uri(stores.platform, "realised_performance")],
    )
    run_days = decaying(decayed, last, spec.outcomes.decay_days)
    newest = realised_records(stores.platform, spec.name, last, last)
    realised = {m: i["estimate"] for m, i in newest[0].metrics.items()} if newest else {}
    log.info(
        "%s, ds=%s: %d matured days judged (%s .. %s), %d changed; %s",
        spec.name,
        ds,
        len(judged),
        first,
        last,
        len(changed),
        f"decayed on {run_days}" if run_days else "no decay",
    )
    return Evaluated(
        ds=ds,
        primary=spec.gate.primary,
        judged=judged,
        changed=changed,
        decaying=run_days,
        realised=realised,
        expected=newest[0].expected if newest else {},
    )


def store_unless_newer(platform: sa.Engine, row: dict[str, Any]) -> bool:
    """Replace the day's figures with `row`, unless an evaluation on a later day than
    `row["evaluated_through"]` stored them meanwhile (read under the write lock, so two evaluations
    running at once cannot undo each other); whether it was written."""
    from include.platform.day_swap import partition_filter, partition_lock, replace_rows
    from include.platform.tables import realised_performance as table

    key = {"use_case": row["use_case"], "ds": row["ds"]}
    with platform.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(partition_lock(table, key))
        else:  # SQLite: a first write takes the database's write lock, so the read below is current
            conn.execute(table.update().where(partition_filter(table, key)).values(run_id=table.c.run_id))
        stored = conn.execute(
            sa.select(table.c.evaluated_through).where(partition_filter(table, key))
        ).scalar()
        if stored is not None and stored > row["evaluated_through"]:
            return False
        replace_rows(conn, table, key, [row])
    return True


def decay_retrain_due(run: RunFacts, evaluated: Evaluated, stores: Stores) -> bool:
    """Whether the decay should ask for a retrain: a decaying run of days, past the cooldown."""
    from include.monitoring.policy import should_retrain
    from include.platform.queries import last_retrain_request

    if not evaluated.decaying:
        return False
    with stores.platform.connect() as conn:
        last = last_retrain_request(conn, run.use_case)
    due = should_retrain({"decay"}, evaluated.ds, last, run.spec.drift.cooldown_days)
    log.info("%s, ds=%s: decay; last retrain request %s: %s", run.use_case, evaluated.ds, last, due)
    return due


def decay_reasons(run: RunFacts, evaluated: Evaluated) -> list[str]:
    """Why the realised performance counts as decayed, in words, for the alert and the record."""
    primary = evaluated.primary
    shown = evaluated.realised.get(primary)
    return [
        f"realised {primary} below the holdout expectation beyond its interval on each of "
        f"{', '.join(map(str, evaluated.decaying))} (newest: {shown if shown is None else round(shown, 4)}, "
        f"expected {evaluated.expected.get(primary)})"
    ]


def request_decay_retrain(run: RunFacts, evaluated: Evaluated, stores: Stores) -> dict[str, Any]:
    """Record the retrain request (reason `decay`); the retrain asset event's extra.

    Raises:
        DecayRetrainBlocked: when a request of the same day, or one recorded meanwhile within the
            cooldown, holds it back.
    """
    from include.io.bulk import is_postgres
    from include.monitoring.policy import should_retrain
    from include.platform.day_swap import partition_lock, replace_rows
    from include.platform.queries import last_retrain_request
    from include.platform.tables import retrain_requests

    spec, ds, platform = run.spec, evaluated.ds, stores.platform
    key = {"use_case": spec.name, "ds": ds}
    realised = {evaluated.primary: evaluated.realised.get(evaluated.primary)}
    with platform.begin() as conn:
        if is_postgres(platform):
            conn.execute(partition_lock(retrain_requests, {"use_case": spec.name}))
        same_day = conn.execute(
            retrain_requests.select().where(
                (retrain_requests.c.use_case == spec.name) & (retrain_requests.c.ds == ds)
            )
        ).first()
        if same_day is not None:
            raise DecayRetrainBlocked(f"{spec.name}, ds={ds}: a retrain was already requested that day")
        replace_rows(
            conn,
            retrain_requests,
            key,
            [{**key, "run_id": run.run_id, "features": realised, "reason": "decay"}],
        )
        last = last_retrain_request(conn, spec.name, besides=ds)
        if not should_retrain({"decay"}, ds, last, spec.drift.cooldown_days):
            raise DecayRetrainBlocked(f"{spec.name}, ds={ds}: the request of {last} holds it (cooldown)")
    return {"ds": ds.isoformat(), "reason": "decay", "days": [str(d) for d in evaluated.decaying]}


class DecayRetrainBlocked(Exception):
    """A request of the same day, or one recorded since `decay_retrain_due` looked, holds this one back."""
