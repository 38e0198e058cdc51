"""Which rows a day's sources give: the files under a day's prefix, and the SQLite rows of a day."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from include.ingest.sources import READ_REASON, day_files, read_sql_day
from include.partition import Partition
from include.usecases.spec import Source

PREFIX = "billing/ds=2025-03-05/"
LISTED = [
    PREFIX + "billing.csv",
    PREFIX + "part-2.csv",
    PREFIX + "_SUCCESS",
    PREFIX + ".billing.csv.crc",
    PREFIX + "old/billing.csv",
    PREFIX + "late/extra.csv",
    PREFIX + "_temporary/0/part-9.csv",
    PREFIX + ".snapshots/billing.csv",
]


def test_a_day_reads_the_files_directly_under_its_prefix_and_no_marker_or_hidden_file():
    assert day_files(LISTED, PREFIX, recursive=False) == [PREFIX + "billing.csv", PREFIX + "part-2.csv"]


def test_a_recursive_source_reads_subfolders_too_but_no_hidden_folder():
    assert day_files(LISTED, PREFIX, recursive=True) == [
        PREFIX + "billing.csv",
        PREFIX + "part-2.csv",
        PREFIX + "old/billing.csv",
        PREFIX + "late/extra.csv",
    ]


def test_a_prefix_without_a_slash_starts_the_names_of_the_day_files():
    listed = ["billing/2025-03-05-a.csv", "billing/2025-03-05-b/c.csv", "billing/2025-03-05_x.csv"]

    assert day_files(listed, "billing/2025-03-05", recursive=False) == [listed[0], listed[2]]
    assert day_files(["billing/_2025-03-05.csv"], "billing/_2025", recursive=False) == []


SOURCE = Source(
    name="snapshots",
    kind="sql",
    conn_id="db",
    table="snapshots",
    date_column="snapshot_date",
    columns=("customer", "plan"),
)
# customer -> the date as a source system wrote it into SQLite's text column.
DATES = {
    "plain": "2025-03-05",
    "timed": "2025-03-05 23:59:59",
    "iso_t": "2025-03-05T10:00:00.250",
    "zulu": "2025-03-05T10:00Z",
    "offset_back": "2025-03-04T22:30:00-05:00",  # 2025-03-05 03:30 UTC
    "offset_ahead": "2025-03-05T22:30:00-05:00",  # 2025-03-06 03:30 UTC
    "offset_east": "2025-03-06T08:00:00+09:00",  # 2025-03-05 23:00 UTC
    "slashed": "2025/03/05",
    "blanks": " 2025-03-05 ",
    "day_before": "2025-03-04",
    "day_after": "2025-03-06",
    "no_such_day": "2025-02-30",
    "day_first": "05/03/2025",
    "words": "next Tuesday",
    "blank": " ",
    "null": None,
}
ON_THE_DAY = ["plain", "timed", "iso_t", "zulu", "offset_back", "offset_east", "slashed", "blanks"]
ON_NO_DAY = {
    "no_such_day": "snapshot_date: not a date: '2025-02-30'",
    "day_first": "snapshot_date: not a date: '05/03/2025'",
    "words": "snapshot_date: not a date: 'next Tuesday'",
    "blank": "snapshot_date: is empty",
    "null": "snapshot_date: is empty",
}


@pytest.fixture
def engine(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'source.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE snapshots (customer TEXT, plan TEXT, snapshot_date DATE)")
        conn.execute(
            sa.text("INSERT INTO snapshots VALUES (:customer, 'basic', :day)"),
            [{"customer": c, "day": d} for c, d in DATES.items()],
        )
    yield engine
    engine.dispose()


def read_day(engine, day: dt.date, tz: str = "UTC") -> list[dict]:
    """The rows read for the day, from batches of 4 rows (each typed by its own values)."""
    batches = list(read_sql_day(engine, SOURCE, Partition(day, tz), batch_rows=4))
    assert {tuple(b.schema.names) for b in batches} == {("customer", "plan", "snapshot_date", READ_REASON)}
    return [row for batch in batches for row in batch.to_pylist()]


def placed_and_unplaced(rows: list[dict]) -> tuple[list[str], dict[str, str]]:
    placed = [r["customer"] for r in rows if r[READ_REASON] is None]
    return placed, {r["customer"]: r[READ_REASON] for r in rows if r[READ_REASON] is not None}


def test_sqlite_rows_land_on_their_day_offsets_by_their_utc_instant(engine):
    placed, unplaced = placed_and_unplaced(read_day(engine, dt.date(2025, 3, 5)))

    assert sorted(placed) == sorted(ON_THE_DAY)
    assert unplaced == ON_NO_DAY


def test_every_row_is_read_on_exactly_one_day_or_quarantined_by_every_day(engine):
    days = [dt.date(2025, 3, 1) + dt.timedelta(days=i) for i in range(10)]

    placed_on = {}
    for day in days:
        placed, unplaced = placed_and_unplaced(read_day(engine, day))
        assert unplaced == ON_NO_DAY, day
        for customer in placed:
            placed_on.setdefault(customer, []).append(day)

    assert set(placed_on) | set(ON_NO_DAY) == set(DATES)
    assert all(len(found) == 1 for found in placed_on.values())
    assert placed_on["offset_ahead"] == [dt.date(2025, 3, 6)]
    assert placed_on["day_before"] == [dt.date(2025, 3, 4)]


def test_a_sqlite_row_keeps_its_date_as_written_for_the_quarantine_record(engine):
    dates = {r["customer"]: r["snapshot_date"] for r in read_day(engine, dt.date(2025, 3, 5))}

    assert dates["slashed"] == "2025/03/05" and dates["blanks"] == " 2025-03-05 "
    assert dates["null"] is None


def test_in_another_time_zone_a_date_without_offset_is_local_and_one_with_an_offset_its_instant(engine):
    # New York is UTC-5 in early March: its 2025-03-05 runs from 05:00 UTC to 05:00 UTC next day.
    placed, _ = placed_and_unplaced(read_day(engine, dt.date(2025, 3, 5), "America/New_York"))

    assert "plain" in placed and "timed" in placed
    assert "offset_ahead" in placed  # 22:30 in New York
    assert "offset_back" not in placed  # 2025-03-04 22:30 in New York
