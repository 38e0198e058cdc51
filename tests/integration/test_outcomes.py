"""Outcomes that arrive later, on SQLite and PostgreSQL: 20 scored days, their outcomes observed
1 to 8 days later and delivered in two batches (some days late), the outcome ingest and the
evaluation stages run as the evaluate DAG runs them.

Checked: the realised metrics equal scikit-learn's on the joined rows, the coverage is exact, a
rerun changes nothing, a late batch updates only the days it judges, bad outcome rows are counted
by reason, and an evaluation of an earlier day (a backfill) never undoes a later one's figures.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

from include.cli import performance
from include.io.stores import LocalStore
from include.outcomes.task import run_evaluation, run_outcome_ingest
from include.partition import Partition
from include.platform.day_swap import replace_rows
from include.platform.queries import outcome_run_records, realised_records
from include.platform.schema import upgrade
from include.platform.tables import predictions, realised_performance, score_runs
from include.registry.registry import Registry
from include.runs import RunFacts, Stores
from include.usecases.spec import get_spec
from tests.conftest import connection_of, new_version, use_platform
from tests.integration.test_scoring import platform  # noqa: F401 (fixture: SQLite, then PostgreSQL)
from tools.testkit import OUTCOMES_TABLE, churn_outcomes, write_changed_spec

pytestmark = pytest.mark.integration

FIRST = dt.date(2025, 3, 1)
DAYS = [FIRST + dt.timedelta(days=n) for n in range(20)]
ROWS = 60
MATURITY = 8
EVALUATED = DAYS[-1] + dt.timedelta(days=MATURITY)  # every scored day matured
# Observation days whose outcomes reach the source late (the second batch).
LATE = {FIRST + dt.timedelta(days=n) for n in (4, 11, 17)}


def entity(day: int, row: int) -> str:
    """An id in the spec's pattern (four digits, five capitals), unique per day and row."""
    return f"{day * 100 + row:04d}-" + "".join(chr(65 + (row // 26**k) % 26) for k in range(5))


@pytest.fixture
def world(platform, tmp_path, monkeypatch):  # noqa: F811 (the imported fixture)
    """The scored days in the platform, every outcome in a frame (`observed_date`), the spec."""
    specs = write_changed_spec(
        tmp_path / "specs",
        {"outcomes": churn_outcomes(MATURITY, lookback_days=30, resamples=200)},
    )
    spec = get_spec("churn", specs)
    source = sa.create_engine(f"sqlite:///{tmp_path / 'source.db'}")
    monkeypatch.setenv("AIRFLOW_CONN_CHURN_OUTCOMES_DB", connection_of(source))
    from include.io.connections import engine_for

    engine_for.cache_clear()
    upgrade(platform)
    version = Registry(platform).register(new_version("train-1", FIRST - dt.timedelta(days=1), 0.8))
    rng = np.random.default_rng(3)
    scored, outcomes = [], []
    for n, day in enumerate(DAYS):
        ids = [entity(n, row) for row in range(ROWS)]
        score = rng.uniform(0.02, 0.98, ROWS)
        rows = [
            {
                "use_case": "churn",
                "ds": day,
                "entity_id": i,
                "model_version": version.version,
                "score": float(s),
                "predicted_label": int(s >= version.threshold),
                "scored_at": dt.datetime(2025, 3, 1, tzinfo=dt.UTC),
            }
            for i, s in zip(ids, score, strict=True)
        ]
        with platform.begin() as conn:
            replace_rows(conn, predictions, {"use_case": "churn", "ds": day}, rows)
            replace_rows(conn, score_runs, {"use_case": "churn", "ds": day}, [score_run(day, version)])
        scored.append(pd.DataFrame(rows))
        # Two thirds of the entities get an outcome, observed 1 to 8 days later, drawn from the score.
        has = rng.random(ROWS) < 2 / 3
        later = rng.integers(1, MATURITY + 1, ROWS)
        churned = rng.random(ROWS) < score
        outcomes += [
            {"customerID": i, "Churn": "Yes" if c else "No", "observed_date": day + dt.timedelta(days=int(k))}
            for i, h, k, c in zip(ids, has, later, churned, strict=True)
            if h
        ]
    yield (
        spec,
        Stores(LocalStore(tmp_path / "lake"), platform),
        source,
        pd.concat(scored),
        pd.DataFrame(outcomes),
    )
    engine_for.cache_clear()
    source.dispose()


def score_run(day: dt.date, version) -> dict:
    return {
        "use_case": "churn",
        "ds": day,
        "run_id": f"score-{day}",
        "model_version": version.version,
        "model_sha256": version.sha256,
        "threshold": version.threshold,
        "rows_in": ROWS,
        "rows_scored": ROWS,
        "rows_rejected": 0,
        "rejected_reasons": {},
        "score_histogram": [0] * 10,
        "drift_level": "ok",
        "predictions_uri": "file:///lake",
    }


def deliver(source: sa.Engine, rows: pd.DataFrame) -> None:
    """Append outcome rows to the source table, as the system of record would."""
    rows.to_sql(OUTCOMES_TABLE, source, if_exists="append", index=False)


def ingest(spec, stores, days, run_id="outcomes") -> None:
    for day in days:
        run_outcome_ingest(RunFacts(spec, Partition(day), f"{run_id}-{day}"), stores)


def evaluate(spec, stores, day=EVALUATED, run_id="evaluate"):
    return run_evaluation(RunFacts(spec, Partition(day), run_id), stores)


def observation_days() -> list[dt.date]:
    return [FIRST + dt.timedelta(days=n) for n in range(1, len(DAYS) + MATURITY + 1)]


def expected_day(scored: pd.DataFrame, known: pd.DataFrame, day: dt.date, threshold: float) -> dict:
    """scikit-learn's figures on the day's predictions joined with their entities' outcomes."""
    joined = scored[scored["ds"] == day].merge(known, left_on="entity_id", right_on="customerID")
    y = (joined["Churn"] == "Yes").to_numpy()
    p = joined["score"].to_numpy()
    return {
        "rows": len(joined),
        "roc_auc": roc_auc_score(y, p),
        "accuracy": accuracy_score(y, p >= threshold),
        "log_loss": log_loss(y, p, labels=[False, True]),
    }


def table_rows(engine: sa.Engine) -> list[tuple]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(realised_performance).order_by(realised_performance.c.ds)))


def test_realised_performance_with_late_and_rerun_outcomes(world, monkeypatch):
    spec, stores, source, scored, outcomes = world
    engine, threshold = stores.platform, Registry(stores.platform).get("churn", 1).threshold
    on_time = outcomes[~outcomes["observed_date"].isin(LATE)]
    deliver(source, on_time)
    ingest(spec, stores, observation_days())
    first = evaluate(spec, stores)
    assert first.judged == DAYS and first.changed == DAYS
    realised = {r.ds: r for r in realised_records(engine, "churn")}
    for day in DAYS:
        want = expected_day(scored, on_time, day, threshold)
        got = realised[day]
        assert got.rows_scored == ROWS and got.rows_matched == want["rows"]
        assert got.coverage == pytest.approx(want["rows"] / ROWS, abs=1e-12)
        for metric in ("roc_auc", "accuracy", "log_loss"):
            assert got.metrics[metric]["estimate"] == pytest.approx(want[metric], abs=1e-9), (day, metric)
            assert (
                got.metrics[metric]["lower"]
                <= got.metrics[metric]["estimate"]
                <= got.metrics[metric]["upper"]
            )
        assert got.expected["roc_auc"] == 0.8 and got.evaluated_through == EVALUATED

    before = table_rows(engine)
    assert evaluate(spec, stores, run_id="rerun").changed == []
    assert table_rows(engine) == before  # not even rewritten

    # The late batch: its observation days are ingested again (a rerun of those days).
    deliver(source, outcomes[outcomes["observed_date"].isin(LATE)])
    ingest(spec, stores, sorted(LATE), run_id="late")
    late_entities = set(outcomes.loc[outcomes["observed_date"].isin(LATE), "customerID"])
    judged_by_late = sorted(set(scored.loc[scored["entity_id"].isin(late_entities), "ds"]))
    after = evaluate(spec, stores, run_id="after-late")
    assert after.changed == judged_by_late and 0 < len(judged_by_late) < len(DAYS)
    untouched = [row for row in table_rows(engine) if row.ds not in judged_by_late]
    assert untouched == [row for row in before if row.ds not in judged_by_late]
    for day in judged_by_late:
        got = realised_records(engine, "churn", day, day)[0]
        want = expected_day(scored, outcomes, day, threshold)
        assert got.rows_matched == want["rows"] and got.run_id == "after-late"
        assert got.metrics["roc_auc"]["estimate"] == pytest.approx(want["roc_auc"], abs=1e-9)

    # A backfilled evaluation of an earlier day sees fewer outcomes, but leaves the later figures.
    assert evaluate(spec, stores, day=EVALUATED - dt.timedelta(days=3), run_id="backfill").changed == []
    assert realised_records(engine, "churn", DAYS[0], DAYS[0])[0].run_id != "backfill"

    # The CLI prints the same figures, a row per matured day.
    use_platform(monkeypatch, engine, stores.lake.root)
    printed = performance("churn")
    assert [row["ds"] for row in printed] == [day.isoformat() for day in DAYS]
    stored = realised_records(engine, "churn")
    assert [row["realised"] for row in printed] == [r.metrics["roc_auc"]["estimate"] for r in stored]
    assert [row["coverage"] for row in printed] == [round(r.coverage, 4) for r in stored]


def test_bad_outcome_rows_are_counted_by_reason_and_the_rest_kept(world):
    spec, stores, source, _, outcomes = world
    day = FIRST + dt.timedelta(days=3)
    good = outcomes[outcomes["observed_date"] == day]
    bad = pd.DataFrame(
        [
            {"customerID": "9999-ZZZZZ", "Churn": "Yes", "observed_date": day},  # never scored
            {"customerID": good["customerID"].iloc[0], "Churn": "No", "observed_date": day},  # twice
            {"customerID": entity(0, 59), "Churn": "Maybe", "observed_date": day},
        ]
    )
    deliver(source, pd.concat([good, bad]))
    ingest(spec, stores, [day])
    [record] = outcome_run_records(stores.platform, "churn")
    assert record.rows_read == len(good) + 3
    assert record.rows_kept == len(good) - 1 and record.rows_quarantined == 4
    assert record.quarantine_reasons == {
        "customerID: duplicate id": 2,
        "customerID: no prediction for this entity in the days it could judge": 1,
        "Churn: fails isin(['Yes', 'No'])": 1,
    }
    # Ingesting the day again gives the same rows (idempotent).
    ingest(spec, stores, [day], run_id="again")
    assert outcome_run_records(stores.platform, "churn")[0].rows_kept == len(good) - 1


def test_outcomes_of_unscored_entities_are_counted_but_do_not_fail_the_day(world):
    """A new deployment's first days observe outcomes of entities it never scored: quarantined with
    their reason, but the day is ingested (only faulty rows count against the quarantine limit)."""
    spec, stores, source, _, outcomes = world
    day = FIRST + dt.timedelta(days=2)
    strangers = pd.DataFrame(
        [{"customerID": f"{n:04d}-QQQQQ", "Churn": "No", "observed_date": day} for n in range(40)]
    )
    deliver(source, pd.concat([outcomes[outcomes["observed_date"] == day], strangers]))
    ingest(spec, stores, [day])
    [record] = outcome_run_records(stores.platform, "churn")
    assert record.rows_quarantined == 40 > record.rows_kept * spec.ingest.max_quarantine_fraction
    assert record.quarantine_reasons == {
        "customerID: no prediction for this entity in the days it could judge": 40
    }
