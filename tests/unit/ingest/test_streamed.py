"""The streamed day against the in-memory reference (today's pandas + pandera code, `reference.py`).

On random days of real Telco rows, with bad values of every kind, repeated ids, rows missing from one
source and sources in different orders, read in small batches: the same partition, the same
quarantine rows, row numbers, reasons and records, the same counts, or the same error.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from include.ingest.parquet import QUARANTINE_SCHEMA, row_groups, typed_schema, write_parquet
from include.ingest.pipeline import ingest_partition
from include.ingest.validate import IngestError
from include.io.lake import QUARANTINE_ZONE, RAW_ZONE, partition_key
from include.io.stores import LocalStore
from include.partition import Partition
from include.platform.schema import upgrade
from include.usecases.spec import get_spec
from tests.unit.ingest.reference import build_day
from tools.demo.seed import load_telco

DAY = dt.date(2025, 3, 31)
ID = "customerID"
BATCH = 4  # rows per batch read and per row group: every day spans several
CHURN = get_spec("churn")
SPEC = CHURN.model_copy(
    update={
        "ingest": CHURN.ingest.model_copy(update={"max_quarantine_fraction": 0.5, "row_group_rows": BATCH})
    }
)
SOURCES = {s.name: list(s.columns) for s in SPEC.sources}
TELCO = load_telco().head(40)
# Values each column may be given instead of its real one: wrong types, blanks, values out of their
# set or range, and values that are valid once trimmed or parsed.
FAULTS = {
    ID: ["", " ", "bad", "5575-gnvde", " 7590-VHVEG "],
    "gender": ["Robot", "", " Male ", "male"],
    "SeniorCitizen": ["2", "1.0", " 1", "x", "", "-0"],
    "tenure": ["-1", "3.5", "ten", "1e2", "1201", "12.0", "inf", "nan", "+5", ""],
    "Contract": ["Weekly", " One year", ""],
    "PaymentMethod": ["Cash", ""],
    "MonthlyCharges": [
        "-0.01",
        "1e3",
        "nan",
        "inf",
        "-inf",
        "1e309",
        "1e300",
        "3.5e38",
        "abc",
        "",
        " 20.5 ",
    ],
    "TotalCharges": ["$20", "", "  ", "-1", "1e-3"],
    "Churn": ["Maybe", "yes"],
}


@st.composite
def days(draw):
    """The two sources' rows of one day, as text, with faults."""
    n = draw(st.integers(1, 25))
    rows = TELCO.head(n).copy()
    sources = {name: rows[columns].copy() for name, columns in SOURCES.items()}
    for _ in range(draw(st.integers(0, 8))):
        column = draw(st.sampled_from(sorted(FAULTS)))
        name = draw(st.sampled_from([s for s, cols in SOURCES.items() if column in cols]))
        sources[name].iloc[draw(st.integers(0, n - 1)), sources[name].columns.get_loc(column)] = draw(
            st.sampled_from(FAULTS[column])
        )
    for _ in range(draw(st.integers(0, 2))):  # a repeated id
        name = draw(st.sampled_from(sorted(sources)))
        i, j = draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))
        sources[name].iloc[j, 0] = sources[name].iloc[i, 0]
    for name, source in list(sources.items()):  # rows only the other has, each source in its own order
        drop = draw(st.sets(st.integers(0, n - 1), max_size=2))
        frame = source.drop(index=source.index[sorted(drop)])
        sources[name] = frame.iloc[draw(st.permutations(range(len(frame))))].reset_index(drop=True)
    return sources


def batches(frame: pd.DataFrame):
    table = pa.Table.from_pandas(frame, preserve_index=False)
    return iter(table.to_batches(max_chunksize=BATCH))


@functools.cache
def platform() -> sa.Engine:
    """One platform database for every example: each day's run record replaces the last."""
    engine = sa.create_engine("sqlite://")
    upgrade(engine)
    return engine


def streamed(raw: dict[str, pd.DataFrame]):
    """(partition, quarantine, counts) from `ingest_partition`, read back from its lake, or its
    `IngestError`."""
    with tempfile.TemporaryDirectory() as tmp:
        lake = LocalStore(Path(tmp))
        sources = {name: batches(frame) for name, frame in raw.items()}
        result = ingest_partition(
            SPEC, Partition(DAY), raw=sources, lake=lake, platform=platform(), run_id="t"
        )
        partition = pq.read_table(lake.root / partition_key(RAW_ZONE, SPEC.name, DAY))
        quarantine = QUARANTINE_SCHEMA.empty_table()
        if result.quarantine_uri:
            quarantine = pq.read_table(lake.root / partition_key(QUARANTINE_ZONE, SPEC.name, DAY))
    return partition.to_pandas(), quarantine.to_pandas(), result.counts


def plain(quarantine: pd.DataFrame) -> list[tuple]:
    """Quarantine rows with the record parsed (1 and 1.0 are the same number in JSON)."""
    return [
        (
            r.source,
            r.row_number,
            None if pd.isna(r.entity_id) else r.entity_id,
            r.reasons,
            json.loads(r.record),
        )
        for r in quarantine.itertuples()
    ]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=days())
def test_the_streamed_day_matches_the_in_memory_reference(raw):
    try:
        expected = build_day(SPEC, DAY.isoformat(), raw)
    except IngestError as error:
        with pytest.raises(IngestError) as caught:
            streamed(raw)
        assert str(caught.value) == str(error)
        return
    partition, quarantine, counts = streamed(raw)
    frame, expected_quarantine, expected_counts = expected

    pd.testing.assert_frame_equal(partition, frame)
    assert plain(quarantine) == plain(expected_quarantine)
    assert counts.read == expected_counts["read"]
    assert counts.quarantined == expected_counts["quarantined"]
    assert counts.written == expected_counts["written"] == len(frame)


@pytest.mark.parametrize("change", ["none", "an id repeats", "an id of no snapshot"])
def test_a_day_that_may_be_clean_is_sorted_at_once_and_counted_only_when_it_is_not(change, caplog):
    rows = TELCO.head(10)
    raw = {name: rows[columns].reset_index(drop=True) for name, columns in SOURCES.items()}
    # Every row passes its checks and both sources read 10 rows: the day may be clean.
    if change == "an id repeats":
        raw["billing"].iloc[3, 0] = raw["billing"].iloc[4, 0]
    elif change == "an id of no snapshot":
        raw["billing"].iloc[3, 0] = "9999-ZZZZZ"
    frame, expected_quarantine, expected_counts = build_day(SPEC, DAY.isoformat(), raw)

    with caplog.at_level(logging.INFO, logger="include.ingest.pipeline"):
        partition, quarantine, counts = streamed(raw)

    assert ("not clean" in caplog.text) == (change != "none")
    pd.testing.assert_frame_equal(partition, frame)
    assert plain(quarantine) == plain(expected_quarantine)
    assert counts.quarantined == expected_counts["quarantined"]
    written = {"none": 10, "an id repeats": 8, "an id of no snapshot": 9}[change]
    assert counts.written == expected_counts["written"] == written


def test_the_partition_is_written_in_row_groups_of_the_declared_size(tmp_path):
    store = LocalStore(tmp_path)
    table = pa.table({"n": pa.array(range(23), pa.int64())})

    written = write_parquet(store, "part-0.parquet", table.schema, table.to_batches(max_chunksize=3), 5)

    metadata = pq.ParquetFile(tmp_path / "part-0.parquet").metadata
    assert written == 23
    assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)] == [5, 5, 5, 5, 3]
    assert pq.read_table(tmp_path / "part-0.parquet")["n"].to_pylist() == list(range(23))


def test_dictionary_encoded_columns_are_written_as_the_declared_schema(tmp_path):
    store = LocalStore(tmp_path)
    schema = typed_schema(
        {name: SPEC.columns[name] for name in ("customerID", "Contract", "SeniorCitizen")}, {"n": "Int64"}
    )
    codes = pa.array([2, None, 0, 1, 0, 2, 1], pa.uint8())
    contract = pa.array(["Month-to-month", "One year", "Two year"], pa.large_string())
    plain = pa.table(
        {
            "customerID": pa.array([f"000{i}-ABCDE" for i in range(7)], pa.large_string()),
            "Contract": contract.take(codes),
            "SeniorCitizen": pa.array([0, 1] * 3 + [None], pa.int64()),
            "n": pa.array(range(7), pa.int64()),
        },
        schema=schema,
    )
    encoded = plain.set_column(1, "Contract", pa.DictionaryArray.from_arrays(codes, contract))
    encoded = encoded.set_column(
        2, "SeniorCitizen", pa.DictionaryArray.from_arrays(pa.array([0, 1] * 3 + [None], pa.uint8()), [0, 1])
    )

    write_parquet(store, "plain.parquet", schema, plain.to_batches(max_chunksize=2), 3)
    batches = encoded.to_batches(max_chunksize=2)
    write_parquet(store, "encoded.parquet", schema, batches, 3, unique=["customerID"])

    written = pq.ParquetFile(tmp_path / "encoded.parquet").metadata
    assert pq.read_schema(tmp_path / "encoded.parquet").equals(schema, check_metadata=True)
    assert written.num_rows == 7
    assert [written.row_group(i).num_rows for i in range(written.num_row_groups)] == [3, 3, 1]
    ids, contract, _, n = (written.row_group(0).column(i) for i in range(4))
    assert "RLE_DICTIONARY" not in ids.encodings and "RLE_DICTIONARY" in contract.encodings
    assert ids.is_stats_set and n.is_stats_set and not contract.is_stats_set
    assert pq.read_table(tmp_path / "encoded.parquet").equals(pq.read_table(tmp_path / "plain.parquet"))
    assert pq.read_table(tmp_path / "encoded.parquet").to_pandas().equals(plain.to_pandas())


def test_a_day_of_no_rows_is_written_as_an_empty_file_of_the_schema(tmp_path):
    schema = pa.schema([("n", pa.int64())])

    assert write_parquet(LocalStore(tmp_path), "part-0.parquet", schema, iter([]), 5) == 0

    assert pq.read_table(tmp_path / "part-0.parquet").schema.equals(schema)


def test_row_groups_regroup_batches_of_any_size_exactly():
    batches = [pa.record_batch({"n": pa.array(range(k, k + size))}) for k, size in ((0, 7), (7, 1), (8, 12))]

    groups = list(row_groups(batches, 6))

    assert [g.num_rows for g in groups] == [6, 6, 6, 2]
    assert [v for g in groups for v in g["n"].to_pylist()] == list(range(20))


def test_a_failed_write_leaves_nothing_under_the_key(tmp_path):
    store = LocalStore(tmp_path)
    schema = pa.schema([("n", pa.int64())])

    def failing():
        yield pa.record_batch({"n": pa.array([1, 2])})
        raise OSError("source went away")

    with pytest.raises(OSError, match="source went away"):
        write_parquet(store, "raw/part-0.parquet", schema, failing(), 1)

    assert store.list_keys("") == []
