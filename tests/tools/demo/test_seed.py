"""Seeding the demo sources: every customer on one stable day, both sources agreeing day by day."""

from __future__ import annotations

import datetime as dt
import io

import pandas as pd
import pytest
import sqlalchemy as sa

from include.io.stores import LocalStore
from include.usecases.spec import get_spec
from tools.demo.seed import DRIFT_FACTOR, DRIFT_FROM, assign_days, demo_dates, load_telco, seed

ID = "customerID"
CUSTOMERS = 7043
FIRST, LAST = dt.date(2025, 1, 1), dt.date(2025, 3, 31)


@pytest.fixture(scope="module")
def telco() -> pd.DataFrame:
    return load_telco()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """The sources seeded once into a SQLite file and a folder; returns (what seed said, table,
    billing, outcomes)."""
    folder = tmp_path_factory.mktemp("seeded")
    engine = sa.create_engine(f"sqlite:///{folder / 'source.db'}")
    files = LocalStore(folder / "files")
    said = seed(engine, files, get_spec("churn"))
    table = pd.read_sql_table("customer_snapshots", engine)
    outcomes = pd.read_sql_table("customer_outcomes", engine)
    engine.dispose()
    billing = pd.concat(
        [
            pd.read_csv(io.BytesIO(files.read_bytes(key)), dtype="str", keep_default_na=False).assign(
                ds=dt.date.fromisoformat(key.split("ds=")[1].split("/")[0])
            )
            for key in files.list_keys("billing/")
        ],
        ignore_index=True,
    )
    return said, table, billing, outcomes


def test_demo_dates_are_the_90_days_of_the_first_quarter():
    dates = demo_dates()

    assert (len(dates), dates[0], dates[-1]) == (90, FIRST, LAST)
    assert len(set(dates)) == 90


def test_every_customer_is_assigned_a_demo_day(telco):
    days = assign_days(telco[ID], demo_dates())

    assert len(telco) == CUSTOMERS
    assert days.notna().all()
    assert set(days) == set(demo_dates())


def test_the_assignment_is_stable_and_ignores_row_order(telco):
    first = assign_days(telco[ID], demo_dates())
    shuffled = telco[ID].sample(frac=1, random_state=7)

    again = assign_days(shuffled, demo_dates())

    assert first.equals(assign_days(telco[ID], demo_dates()))
    assert dict(zip(shuffled, again, strict=True)) == dict(zip(telco[ID], first, strict=True))


def test_seed_reports_and_writes_every_customer_once(seeded):
    said, table, billing, _ = seeded

    assert said == {"rows": CUSTOMERS, "days": 90, "files": 90, "outcomes": CUSTOMERS}
    assert len(table) == table[ID].nunique() == CUSTOMERS
    assert len(billing) == billing[ID].nunique() == CUSTOMERS


def test_every_day_has_rows_and_both_sources_agree_on_them(seeded, telco):
    _, table, billing, _ = seeded
    table_days = pd.to_datetime(table["snapshot_date"]).dt.date

    per_day_table = table.groupby(table_days)[ID].apply(set)
    per_day_billing = billing.groupby("ds")[ID].apply(set)

    assert sorted(per_day_table.index) == demo_dates()
    assert per_day_table.map(len).min() > 0
    assert per_day_table.to_dict() == per_day_billing.to_dict()
    expected = dict(zip(telco[ID], assign_days(telco[ID], demo_dates()), strict=True))
    assert dict(zip(table[ID], table_days, strict=True)) == expected


def test_the_source_values_are_the_shipped_ones(seeded, telco):
    _, table, billing, _ = seeded
    by_id = telco.set_index(ID)

    snapshot = table.set_index(ID).loc["7590-VHVEG"]
    assert (snapshot["gender"], snapshot["tenure"], snapshot["Contract"]) == ("Female", 1, "Month-to-month")
    assert table["tenure"].tolist() == by_id.loc[table[ID], "tenure"].astype(int).tolist()
    bill_columns = ["PaperlessBilling", "PaymentMethod", "TotalCharges"]
    assert (
        billing[bill_columns].to_numpy().tolist() == by_id.loc[billing[ID], bill_columns].to_numpy().tolist()
    )
    before = billing[billing["ds"] < DRIFT_FROM]
    assert before["MonthlyCharges"].tolist() == by_id.loc[before[ID], "MonthlyCharges"].tolist()


def test_monthly_charges_rise_25_percent_in_the_last_week_of_march(seeded, telco):
    _, _, billing, _ = seeded
    by_id = telco.set_index(ID)
    late = billing[billing["ds"] >= DRIFT_FROM]

    assert sorted(late["ds"].unique()) == [DRIFT_FROM + dt.timedelta(days=i) for i in range(7)]
    shipped = by_id.loc[late[ID], "MonthlyCharges"].astype(float).to_numpy()
    assert late["MonthlyCharges"].astype(float).to_numpy() == pytest.approx(shipped * DRIFT_FACTOR, abs=0.006)


def test_blank_total_charges_stay_blank_text_in_the_billing_files(seeded, telco):
    _, _, billing, _ = seeded
    blank_in_telco = set(telco.loc[telco["TotalCharges"].str.strip() == "", ID])

    blank_in_files = billing.loc[billing["TotalCharges"].str.strip() == ""]

    assert len(blank_in_telco) == 11
    assert set(blank_in_files[ID]) == blank_in_telco
    assert (blank_in_files["TotalCharges"] == " ").all()  # the very text the source sends


def test_seeding_twice_replaces_instead_of_appending(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'source.db'}")
    files = LocalStore(tmp_path / "files")

    seed(engine, files)
    seed(engine, files)

    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM customer_snapshots")).scalar_one() == CUSTOMERS
    assert len(files.list_keys("billing/")) == 90
    engine.dispose()


def test_each_customers_outcome_is_its_label_observed_a_week_after_its_snapshot(seeded):
    _, table, _, outcomes = seeded
    joined = table.merge(outcomes, on=ID, suffixes=("", "_observed"))
    assert len(joined) == len(outcomes) == CUSTOMERS
    assert (joined["Churn"] == joined["Churn_observed"]).all()
    delay = pd.to_datetime(joined["observed_date"]) - pd.to_datetime(joined["snapshot_date"])
    assert (delay == pd.Timedelta(days=7)).all()
