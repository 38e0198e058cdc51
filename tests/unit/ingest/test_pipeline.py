"""Ingesting one day of the seeded demo sources (SQLite + a local folder) into a local lake.

What an operator would check: the rows that landed, the rows set aside and why, the run record, and
that a failed or repeated run leaves the lake as it was or exactly as the first run left it.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from dataclasses import dataclass

import pandas as pd
import pytest
import sqlalchemy as sa

from include.ingest.pipeline import IngestResult, ingest_partition, read_sources
from include.ingest.validate import IngestError
from include.io.lake import partition_key, read_frame
from include.io.stores import LocalStore
from include.partition import Partition
from include.platform.schema import upgrade
from include.platform.tables import ingest_runs
from include.usecases.spec import UseCase, get_spec
from tools.demo.seed import DRIFT_COLUMN, demo_dates, load_telco, seed, split_sources

DAY = dt.date(2025, 3, 31)
ID = "customerID"
DATA_KEY = partition_key("raw", "churn", DAY)
QUARANTINE_KEY = partition_key("quarantine", "churn", DAY)
BILLING_KEY = "billing/ds=2025-03-31/billing.csv"


@dataclass
class Demo:
    """The seeded sources, an empty lake and an empty platform database, all under tmp_path."""

    spec: UseCase
    source_db: sa.Engine
    files: LocalStore
    lake: LocalStore
    platform: sa.Engine

    def ingest(self, day: dt.date = DAY, run_id: str = "manual__1") -> IngestResult:
        """What the ingest task does, with the demo's engine and stores in place of connections."""
        partition = Partition(day)
        raw = read_sources(self.spec, partition, lambda _: self.source_db, lambda _: self.files)
        return ingest_partition(
            self.spec, partition, raw=raw, lake=self.lake, platform=self.platform, run_id=run_id
        )

    def run_rows(self) -> list[dict]:
        with self.platform.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.select(ingest_runs))]

    def billing(self, key: str = BILLING_KEY) -> pd.DataFrame:
        return pd.read_csv(io.BytesIO(self.files.read_bytes(key)), dtype="str", keep_default_na=False)

    def put_billing(self, frame: pd.DataFrame, key: str = BILLING_KEY) -> None:
        self.files.put_bytes(key, frame.to_csv(index=False).encode())

    def sql(self, statement: str, **params) -> None:
        with self.source_db.begin() as conn:
            conn.execute(sa.text(statement), params)


@pytest.fixture(scope="module")
def spec() -> UseCase:
    return get_spec("churn")


@pytest.fixture(scope="module")
def telco_days(spec) -> pd.DataFrame:
    """The shipped CSV as text as the seed sends it (billing drifts from `DRIFT_FROM`), with each
    customer's day."""
    telco = load_telco()
    _, billing = split_sources(spec, telco, demo_dates())
    return telco.assign(day=billing["ds"], **{DRIFT_COLUMN: billing[DRIFT_COLUMN]})


@pytest.fixture
def demo(tmp_path, spec) -> Demo:
    source_db = sa.create_engine(f"sqlite:///{tmp_path / 'source.db'}")
    files = LocalStore(tmp_path / "files")
    seed(source_db, files, spec)
    platform = sa.create_engine(f"sqlite:///{tmp_path / 'platform.db'}")
    upgrade(platform)
    yield Demo(spec, source_db, files, LocalStore(tmp_path / "lake"), platform)
    source_db.dispose()
    platform.dispose()


def lake_keys(demo: Demo) -> list[str]:
    return demo.lake.list_keys("")


def test_a_day_lands_with_every_row_the_seed_assigned_to_it(demo, telco_days):
    expected = telco_days[telco_days["day"] == DAY].sort_values(ID, ignore_index=True)
    assert len(expected) > 0

    result = demo.ingest()

    frame = read_frame(demo.lake, DATA_KEY)
    assert len(frame) == len(expected) == result.counts.written
    assert result.counts.read == {"snapshots": len(expected), "billing": len(expected)}
    assert frame[ID].tolist() == expected[ID].tolist()
    for name, column in demo.spec.columns.items():
        if column.type == "string":
            assert frame[name].tolist() == expected[name].tolist(), name
        else:
            numbers = pd.to_numeric(expected[name].str.strip().replace("", None))
            assert frame[name].astype("float64").tolist() == numbers.astype("float64").tolist(), name
    assert lake_keys(demo) == [DATA_KEY]
    assert result.quarantine_uri is None


def test_the_partition_has_the_day_and_the_declared_dtypes(demo, telco_days):
    # A day on which a first-month customer arrives with a blank TotalCharges.
    blank = telco_days[telco_days["TotalCharges"].str.strip() == ""].iloc[0]

    demo.ingest(blank["day"])

    frame = read_frame(demo.lake, partition_key("raw", "churn", blank["day"]))
    assert (frame["ds"] == pd.Timestamp(blank["day"])).all()
    assert str(frame["ds"].dtype) == "datetime64[us]"
    assert str(frame["tenure"].dtype) == "Int64"
    assert str(frame["SeniorCitizen"].dtype) == "Int64"
    assert frame["TotalCharges"].dtype == "float64"
    assert frame["MonthlyCharges"].dtype == "float64"
    assert pd.api.types.is_string_dtype(frame["Contract"])
    row = frame.set_index(ID).loc[blank[ID]]
    assert pd.isna(row["TotalCharges"])
    assert row["tenure"] == 0
    assert list(frame.columns) == [*demo.spec.columns, "ds"]


def test_counts_reconcile_per_source_and_the_run_record_says_so(demo):
    billing = demo.billing()
    billing.loc[[0, 1], "TotalCharges"] = "abc"
    demo.put_billing(billing)
    n = len(billing)

    result = demo.ingest()

    counts = result.counts
    assert counts.read == {"snapshots": n, "billing": n}
    assert counts.quarantined == {"snapshots": 2, "billing": 2}
    assert counts.written == n - 2
    for source, read in counts.read.items():
        assert read == counts.written + counts.quarantined[source]
    assert len(read_frame(demo.lake, DATA_KEY)) == n - 2
    quarantine = read_frame(demo.lake, QUARANTINE_KEY)
    assert sorted(quarantine["entity_id"]) == sorted(billing.loc[[0, 1], ID].tolist() * 2)
    [run] = demo.run_rows()
    assert run["rows_read"] == counts.read
    assert run["rows_quarantined"] == counts.quarantined
    assert run["rows_written"] == n - 2
    assert run["quarantine_uri"] == demo.lake.uri(QUARANTINE_KEY)
    # The reasons per source, counted at ingest for the UI page (the value itself left out).
    assert run["quarantine_reasons"] == {
        "billing": {"TotalCharges: not a number": 2},
        "snapshots": {"customerID: no valid row in billing for this id": 2},
    }


def test_reason_counts_group_rows_by_check_whatever_the_values(demo):
    """A value holding the reasons' separator stays one reason; duplicate ids count as one kind, not
    once per id (they filled the page's top ten)."""
    billing = demo.billing()
    twins = billing.head(4).copy()
    billing = pd.concat([billing, twins], ignore_index=True)
    billing.loc[10, "TotalCharges"] = "1; DROP TABLE customer_snapshots;--"
    demo.put_billing(billing)

    demo.ingest()

    [run] = demo.run_rows()
    assert run["quarantine_reasons"]["billing"] == {
        "customerID: duplicate id": 8,
        "TotalCharges: not a number": 1,
    }


def test_rows_without_a_partner_in_the_other_source_are_quarantined_naming_it(demo):
    billing = demo.billing()
    only_in_snapshots, only_in_billing = billing.loc[0, ID], billing.loc[1, ID]
    demo.put_billing(billing.drop(index=0))
    demo.sql("DELETE FROM customer_snapshots WHERE customerID = :id", id=only_in_billing)

    result = demo.ingest()

    quarantine = read_frame(demo.lake, QUARANTINE_KEY).set_index("source")
    assert quarantine.loc["snapshots", "entity_id"] == only_in_snapshots
    assert quarantine.loc["snapshots", "reasons"] == "customerID: no valid row in billing for this id"
    assert quarantine.loc["billing", "entity_id"] == only_in_billing
    assert quarantine.loc["billing", "reasons"] == "customerID: no valid row in snapshots for this id"
    assert result.counts.written == len(billing) - 2
    written = set(read_frame(demo.lake, DATA_KEY)[ID])
    assert not written & {only_in_snapshots, only_in_billing}


def test_a_day_with_no_files_fails_naming_source_prefix_and_date_and_writes_nothing(demo):
    demo.files.delete(BILLING_KEY)

    with pytest.raises(IngestError) as caught:
        demo.ingest()

    message = str(caught.value)
    assert message.startswith("source billing, ds=2025-03-31: no files under ")
    assert demo.files.uri("billing/ds=2025-03-31/") in message
    assert lake_keys(demo) == []
    assert demo.run_rows() == []


def test_a_day_with_no_sql_rows_fails_naming_the_source(demo):
    day = dt.date(2025, 4, 1)  # after the seeded range: a billing file but no snapshot rows
    demo.put_billing(demo.billing(), "billing/ds=2025-04-01/billing.csv")

    with pytest.raises(IngestError, match=r"^source snapshots, ds=2025-04-01: no rows for the day$"):
        demo.ingest(day)

    assert lake_keys(demo) == []
    assert demo.run_rows() == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda f: f.drop(columns="PaymentMethod"), "missing column 'PaymentMethod'"),
        (lambda f: f.assign(Discount="0"), "unknown column 'Discount'"),
    ],
    ids=["missing", "unknown"],
)
def test_a_csv_with_a_wrong_column_fails_naming_the_column_and_the_file(demo, change, problem):
    demo.put_billing(change(demo.billing()))

    with pytest.raises(IngestError) as caught:
        demo.ingest()

    message = str(caught.value)
    assert message.startswith("source billing, ds=2025-03-31, file ")
    assert demo.files.uri(BILLING_KEY) in message
    assert message.endswith(problem)
    assert lake_keys(demo) == []


def test_a_sql_table_missing_a_column_fails_naming_source_column_and_date(demo):
    demo.sql("ALTER TABLE customer_snapshots DROP COLUMN gender")

    with pytest.raises(IngestError) as caught:
        demo.ingest()

    message = str(caught.value)
    assert "source snapshots" in message
    assert "ds=2025-03-31" in message
    assert "'gender'" in message
    assert lake_keys(demo) == []


@pytest.mark.parametrize(
    ("source", "column", "value"), [("billing", "TotalCharges", "N/A"), ("snapshots", "tenure", "-1")]
)
def test_a_mostly_bad_day_fails_naming_the_column_at_fault_and_writes_nothing(demo, source, column, value):
    n = len(demo.billing())
    bad = demo.billing()[ID].head(n // 3).tolist()  # a third of the day, over the 20% limit
    if source == "billing":
        billing = demo.billing()
        billing.loc[billing[ID].isin(bad), column] = value
        demo.put_billing(billing)
    else:
        for customer in bad:
            demo.sql(
                f"UPDATE customer_snapshots SET {column} = :v WHERE customerID = :id", v=value, id=customer
            )

    with pytest.raises(IngestError) as caught:
        demo.ingest()

    message = str(caught.value)
    assert message.startswith(f"source {source}, ds=2025-03-31: {len(bad)} of {n} rows failed validation")
    assert f"most common faults: {column} ({len(bad)})" in message
    assert lake_keys(demo) == []
    assert demo.run_rows() == []


def test_a_file_delivered_twice_is_named_a_duplicate(demo):
    """The day's billing file again under another name: every id twice, said so, not "customerID"."""
    demo.files.put_bytes(
        BILLING_KEY.replace("billing.csv", "billing-again.csv"), demo.files.read_bytes(BILLING_KEY)
    )

    with pytest.raises(IngestError, match=r"most common faults: customerID: duplicate id \(\d+\)"):
        demo.ingest()


def test_half_the_billing_rows_missing_blames_billing(demo):
    billing = demo.billing()
    demo.put_billing(billing.head(len(billing) // 2))

    with pytest.raises(IngestError) as caught:
        demo.ingest()

    message = str(caught.value)
    assert message.startswith("source snapshots, ds=2025-03-31:")
    assert "most common faults: customerID: no valid row in billing (" in message


def test_a_csv_with_a_repeated_header_names_the_file_and_the_column(demo):
    billing = demo.billing()
    demo.put_billing(billing[[*billing.columns, "MonthlyCharges"]])

    with pytest.raises(IngestError) as caught:
        demo.ingest()

    message = str(caught.value)
    assert demo.files.uri(BILLING_KEY) in message
    assert "column 'MonthlyCharges' appears 2 times" in message


def test_text_that_is_not_utf8_in_a_sql_source_names_the_source_column_and_rows(demo):
    for customer in demo.billing()[ID].head(2):
        demo.sql(
            "UPDATE customer_snapshots SET gender = CAST(x'ff41' AS TEXT) WHERE customerID = :id", id=customer
        )

    with pytest.raises(IngestError) as caught:
        demo.ingest()

    message = str(caught.value)
    assert message.startswith(
        "source snapshots (table customer_snapshots), ds=2025-03-31: text that is not valid"
    )
    assert re.search(r"in column 'gender' \(rowid \d+, \d+\)", message), message
    assert demo.run_rows() == []


def test_ingesting_a_day_twice_gives_the_same_partition_and_one_run_record(demo):
    billing = demo.billing()
    billing.loc[0, "PaymentMethod"] = "Cheque"
    demo.put_billing(billing)

    demo.ingest(run_id="scheduled__2025-03-31")
    first = demo.lake.read_bytes(DATA_KEY), demo.lake.read_bytes(QUARANTINE_KEY)
    first_frame = read_frame(demo.lake, DATA_KEY)
    demo.ingest(run_id="backfill__2025-03-31")

    assert (demo.lake.read_bytes(DATA_KEY), demo.lake.read_bytes(QUARANTINE_KEY)) == first
    pd.testing.assert_frame_equal(read_frame(demo.lake, DATA_KEY), first_frame)
    assert lake_keys(demo) == [QUARANTINE_KEY, DATA_KEY]
    [run] = demo.run_rows()
    assert run["run_id"] == "backfill__2025-03-31"
    assert run["ds"] == DAY


def test_a_rerun_after_the_bad_rows_are_fixed_removes_the_quarantine(demo):
    billing = demo.billing()
    demo.put_billing(billing.assign(TotalCharges=["oops", *billing["TotalCharges"][1:]]))
    assert demo.ingest().counts.quarantined["billing"] == 1
    demo.put_billing(billing)

    result = demo.ingest()

    assert result.counts.quarantined == {"snapshots": 0, "billing": 0}
    assert lake_keys(demo) == [DATA_KEY]
    assert demo.run_rows()[0]["quarantine_uri"] is None


def test_a_crash_while_writing_the_partition_leaves_the_previous_one(demo, monkeypatch):
    demo.ingest(run_id="first")
    before = demo.lake.read_bytes(DATA_KEY)
    billing = demo.billing()
    demo.put_billing(billing.assign(MonthlyCharges="1.0"))  # the source changes before the rerun
    real_put = demo.lake.put_file

    def crash_on_data(key, path):
        if key == DATA_KEY:
            raise OSError("connection reset while writing the partition")
        return real_put(key, path)

    monkeypatch.setattr(demo.lake, "put_file", crash_on_data)

    with pytest.raises(OSError, match="connection reset"):
        demo.ingest(run_id="second")

    assert demo.lake.read_bytes(DATA_KEY) == before
    assert (read_frame(demo.lake, DATA_KEY)["MonthlyCharges"] != 1.0).all()
    assert [r["run_id"] for r in demo.run_rows()] == ["first"]
    assert DATA_KEY in lake_keys(demo)


def test_a_quarantined_row_names_its_file_and_its_row_in_that_file(demo):
    billing = demo.billing()
    first, second = billing.iloc[:10].copy(), billing.iloc[10:].reset_index(drop=True)
    second.loc[2, "MonthlyCharges"] = "lots"
    demo.files.delete(BILLING_KEY)
    demo.put_billing(first, "billing/ds=2025-03-31/part-0.csv")
    demo.put_billing(second, "billing/ds=2025-03-31/part-1.csv")

    demo.ingest()

    quarantine = read_frame(demo.lake, QUARANTINE_KEY).set_index("source")
    bad = quarantine.loc["billing"]
    assert bad["file"] == demo.files.uri("billing/ds=2025-03-31/part-1.csv")
    assert bad["file_row_number"] == 2
    assert bad["row_number"] == 12
    assert bad["reasons"] == "MonthlyCharges: not a number: 'lots'"
    # A table's rows have no file: their partner, quarantined in snapshots, says so.
    assert pd.isna(quarantine.loc["snapshots", "file"])
    assert pd.isna(quarantine.loc["snapshots", "file_row_number"])


def test_stray_copies_in_subfolders_and_markers_leave_the_day_as_it_was(demo):
    expected = demo.ingest()
    partition = demo.lake.read_bytes(DATA_KEY)
    day = "billing/ds=2025-03-31/"
    demo.files.put_bytes(day + "old/billing.csv", demo.files.read_bytes(BILLING_KEY))
    demo.files.put_bytes(day + "_SUCCESS", b"")
    demo.files.put_bytes(day + ".billing.csv.swp", b"\x00\xff binary")
    demo.files.put_bytes(day + "_temporary/0/billing.csv", demo.files.read_bytes(BILLING_KEY))

    result = demo.ingest()

    assert result.counts == expected.counts
    assert demo.lake.read_bytes(DATA_KEY) == partition
    assert QUARANTINE_KEY not in lake_keys(demo)


def test_a_recursive_source_reads_its_subfolders(demo):
    day = "billing/ds=2025-03-31/"
    billing = demo.billing()
    demo.files.delete(BILLING_KEY)
    demo.put_billing(billing.iloc[:10], day + "morning/billing.csv")
    demo.put_billing(billing.iloc[10:], day + "evening/billing.csv")
    demo.files.put_bytes(day + "evening/_SUCCESS", b"")
    with pytest.raises(IngestError, match="no files under"):
        demo.ingest()
    sources = [
        s.model_copy(update={"recursive": True}) if s.kind == "files" else s for s in demo.spec.sources
    ]
    demo.spec = demo.spec.model_copy(update={"sources": tuple(sources)})

    result = demo.ingest()

    assert result.counts.read["billing"] == len(billing)
    assert result.counts.written == len(billing)


def test_a_sql_row_whose_date_is_no_day_is_quarantined_on_the_day_and_spoils_no_other_row(demo):
    n = len(demo.billing())
    customer = demo.billing().loc[0, ID]
    demo.sql(
        "INSERT INTO customer_snapshots SELECT * FROM customer_snapshots WHERE customerID = :id", id=customer
    )
    demo.sql(
        "UPDATE customer_snapshots SET snapshot_date = 'last Monday' "
        "WHERE rowid = (SELECT max(rowid) FROM customer_snapshots)"
    )

    result = demo.ingest()

    assert result.counts.read == {"snapshots": n + 1, "billing": n}
    assert result.counts.quarantined == {"snapshots": 1, "billing": 0}
    assert result.counts.written == n
    assert customer in set(read_frame(demo.lake, DATA_KEY)[ID])  # its row of the day is no duplicate
    [row] = read_frame(demo.lake, QUARANTINE_KEY).itertuples()
    assert (row.source, row.entity_id) == ("snapshots", customer)
    assert row.reasons == "snapshot_date: not a date: 'last Monday'"
    assert json.loads(row.record)["snapshot_date"] == "last Monday"
    # Every other day quarantines it too: it is never read silently on none.
    assert demo.ingest(DAY - dt.timedelta(days=1)).counts.quarantined["snapshots"] == 1


def test_rows_of_no_day_do_not_push_a_day_over_its_quarantine_limit(demo):
    """Undated SQL rows are quarantined on every day; judged on none, else 30 of them would fail
    every day at a 20 % limit (80 rows a day here)."""
    n = len(demo.billing())
    demo.sql(
        "INSERT INTO customer_snapshots SELECT * FROM customer_snapshots WHERE customerID IN "
        "(SELECT customerID FROM customer_snapshots LIMIT 30)"
    )
    demo.sql(
        "UPDATE customer_snapshots SET snapshot_date = 'someday' "
        "WHERE rowid > (SELECT max(rowid) - 30 FROM customer_snapshots)"
    )

    result = demo.ingest()

    assert result.counts.quarantined["snapshots"] == 30
    assert result.counts.written == n
    # A day bad on its own still fails, its message counting its own rows.
    billing = demo.billing()
    bad = billing[ID].head(n // 3)
    for customer in bad:
        demo.sql(
            "UPDATE customer_snapshots SET tenure = -1 WHERE customerID = :id AND snapshot_date != 'someday'",
            id=customer,
        )
    with pytest.raises(
        IngestError, match=rf"{len(bad)} of {n} rows failed validation \(besides 30 rows of no day\)"
    ):
        demo.ingest()
