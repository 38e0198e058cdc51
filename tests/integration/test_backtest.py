"""The gate's backtest on matured days, on real churn rows: a candidate that wins on the holdout but
loses on the days whose outcomes have matured is rejected by the backtest rule, and a run reads no
outcome observed after its own day (a backfilled run judges with what was known then).

The outcomes of the matured days are the rows' labels turned over (the relation changed after the
rows were labelled), so the better model on the holdout's labels is the worse one on the outcomes.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa

from include.io.stores import LocalStore
from include.platform.schema import upgrade
from include.platform.tables import outcomes
from include.registry.model_files import dump_model, store_model
from include.registry.registry import Registry
from include.training.estimators import Trial
from include.training.metrics import evaluate_outputs
from include.training.preprocess import split_xy
from include.training.split import DATE_COLUMN
from include.training.task import judge
from include.training.tuning import fit_final
from include.usecases.spec import get_spec
from tools.bench.data import real_rows
from tools.testkit import churn_outcomes, version_of_day, write_changed_spec

pytestmark = pytest.mark.integration

DS = dt.date(2025, 3, 31)
MATURITY = 3
HOLDOUT_START = DS - dt.timedelta(days=13)


@pytest.fixture(scope="module")
def rows():
    spec = get_spec("churn")
    return real_rows(spec)


@pytest.fixture
def world(rows, tmp_path):
    specs = write_changed_spec(
        tmp_path / "specs",
        {
            "outcomes": churn_outcomes(MATURITY),
            "gate": {"backtest": {"days": 7, "min_improvement": 0.0}},
        },
    )
    spec = get_spec("churn", specs)
    platform = sa.create_engine(f"sqlite:///{tmp_path / 'platform.db'}")
    upgrade(platform)
    lake = LocalStore(tmp_path / "lake")
    days = pd.to_datetime(rows[DATE_COLUMN]).dt.date
    train, holdout = rows[days < HOLDOUT_START], rows[(days >= HOLDOUT_START) & (days <= DS)]
    registry = Registry(platform)
    champion = register(registry, lake, spec, train, holdout, "dummy", "champion")
    registry.promote("churn", champion.version, None)
    candidate = register(registry, lake, spec, train, holdout, "logistic_regression", "candidate")
    yield spec, platform, lake, holdout, registry.get("churn", champion.version), candidate
    platform.dispose()


def register(registry, lake, spec, train, holdout, family, run_id):
    """Fit `family` on `train`, store its file, register it with its metrics on `holdout`."""
    params = {"C": 1.0} if family == "logistic_regression" else {}
    model = fit_final(spec, Trial(f"{family}-0", family, params), train, 0.5)
    x, y = split_xy(holdout, spec)
    uri, sha = store_model(lake, spec.name, dump_model(model, {"use_case": spec.name}))
    new = version_of_day(
        spec.name,
        run_id,
        DS,
        family=family,
        artifact_uri=uri,
        sha256=sha,
        threshold=0.5,
        holdout_start=HOLDOUT_START,
        metrics=evaluate_outputs("binary", y.to_numpy(), model.outputs(x), 0.5),
    )
    registered = registry.register(new)
    return registry.get(spec.name, registered.version)


def deliver_turned_over(platform, holdout, observed_after: int) -> int:
    """Each matured holdout day's rows get the opposite of their label as outcome, observed
    `observed_after` days after the day; the rows written."""
    days = pd.to_datetime(holdout[DATE_COLUMN]).dt.date
    matured = holdout[days <= DS - dt.timedelta(days=MATURITY)]
    written = [
        {
            "use_case": "churn",
            "observed_ds": day + dt.timedelta(days=observed_after),
            "entity_id": entity,
            "outcome": "No" if label == "Yes" else "Yes",
            "run_id": "outcomes",
        }
        for entity, label, day in zip(
            matured["customerID"], matured["Churn"], pd.to_datetime(matured[DATE_COLUMN]).dt.date, strict=True
        )
    ]
    with platform.begin() as conn:
        conn.execute(outcomes.insert(), written)
    return len(written)


def test_a_candidate_better_on_the_holdout_but_worse_on_matured_days_is_rejected(world):
    spec, platform, lake, holdout, champion, candidate = world
    delivered = deliver_turned_over(platform, holdout, observed_after=1)
    decision, _ = judge(spec, holdout, lake, candidate, champion, platform, DS)

    assert decision.differences["roc_auc"].lower > 0  # the holdout alone would promote it
    assert not decision.passed
    tested = decision.backtest
    assert (tested.first, tested.last) == (DS - dt.timedelta(days=9), DS - dt.timedelta(days=MATURITY))
    assert tested.rows == delivered - sum(  # every matured row of the 7 backtest days
        1 for d in pd.to_datetime(holdout[DATE_COLUMN]).dt.date if d < tested.first
    )
    assert tested.gain.upper < 0
    [reason] = [r for r in decision.reasons if r.startswith("backtest")]
    assert "< backtest.min_improvement +0.0000" in reason
    assert all(day.candidate < 0.5 for day in tested.days)  # worse than chance on the outcomes


def test_outcomes_observed_after_the_runs_day_are_never_read(world):
    spec, platform, lake, holdout, champion, candidate = world
    deliver_turned_over(platform, holdout, observed_after=MATURITY + 8)  # all after DS
    decision, _ = judge(spec, holdout, lake, candidate, champion, platform, DS)
    assert decision.passed
    assert decision.backtest.rows == 0 and decision.backtest.gain is None
    assert any(r.startswith("backtest: no matured outcome") for r in decision.reasons)

    # A backfilled run of an earlier day sees only the outcomes observed by then.
    earlier = DS - dt.timedelta(days=4)
    backfilled, _ = judge(spec, holdout, lake, candidate, champion, platform, earlier)
    assert backfilled.backtest.last == earlier - dt.timedelta(days=MATURITY)
    assert backfilled.backtest.rows == 0


def test_the_backtest_is_stored_with_the_decision_and_read_back_as_the_page_and_cli_show_it(world):
    from include.cli import gate_table
    from include.registry.read_models import decision_detail

    spec, platform, lake, holdout, champion, candidate = world
    deliver_turned_over(platform, holdout, observed_after=1)
    decision, curves = judge(spec, holdout, lake, candidate, champion, platform, DS)
    registry = Registry(platform)
    registry.record_decision(candidate, champion, decision, curves)
    detail = decision_detail(registry.decision("churn", candidate.version))
    tested = detail.backtest
    assert [day.ds for day in tested.days] == [day.ds for day in decision.backtest.days]
    assert (tested.gain, tested.lower, tested.upper) == pytest.approx(
        (decision.backtest.gain.estimate, decision.backtest.gain.lower, decision.backtest.gain.upper)
    )
    printed = gate_table([detail.model_dump(mode="json")], "roc_auc")
    assert "backtest gain [bounds]" in printed and f"on {len(tested.days)} days" in printed
