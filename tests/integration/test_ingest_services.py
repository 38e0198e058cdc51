"""Ingest against the real services: PostgreSQL, moto's S3 server, and the DAG run through Airflow."""

from __future__ import annotations

import datetime as dt
import io
import json

import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa

from include.ingest.sources import read_files_day, read_sql_day
from include.ingest.validate import IngestError
from include.io.lake import read_frame
from include.io.stores import S3Store
from include.partition import Partition
from include.platform.tables import ingest_runs
from include.usecases.spec import get_spec
from tests.conftest import run_dag
from tools.demo.seed import demo_dates, load_telco, seed, split_sources

pytestmark = pytest.mark.integration

DAY = dt.date(2025, 3, 31)
SPEC = get_spec("churn")
BATCH = 7  # rows per batch: the day's ~80 rows come in several


def collect(batches) -> pd.DataFrame:
    """A stream of batches as one frame."""
    return pa.Table.from_batches(list(batches)).to_pandas()


@pytest.fixture
def expected_day():
    """The CSV rows the seed assigns to DAY."""
    snapshots, _ = split_sources(SPEC, load_telco(), demo_dates())
    return snapshots[snapshots["snapshot_date"] == DAY]


@pytest.fixture
def sources(pg_engine, s3_client, make_bucket):
    """Both demo sources seeded on the real services: the table in PostgreSQL, billing in S3."""
    store = S3Store(s3_client, make_bucket("sources"))
    seed(pg_engine, store, SPEC)
    return pg_engine, store


def test_sql_source_reads_exactly_the_day_from_postgres(sources, expected_day):
    engine, _ = sources
    rows = collect(read_sql_day(engine, SPEC.source("snapshots"), Partition(DAY), BATCH))
    assert sorted(rows["customerID"]) == sorted(expected_day["customerID"])
    # The row's date travels with it (a quarantined row's record shows it).
    assert list(rows.columns) == [*SPEC.source("snapshots").columns, "snapshot_date"]
    assert set(rows["snapshot_date"]) == {DAY}


def test_sql_source_names_a_missing_column(sources):
    engine, _ = sources
    with engine.begin() as conn:
        conn.execute(sa.text('ALTER TABLE customer_snapshots DROP COLUMN "Contract"'))
    with pytest.raises(IngestError, match=r"source snapshots .*ds=2025-03-31.*'Contract'"):
        read_sql_day(engine, SPEC.source("snapshots"), Partition(DAY), BATCH)


def test_files_source_reads_the_day_from_s3(sources, expected_day):
    _, store = sources
    rows = collect(read_files_day(store, SPEC.source("billing"), Partition(DAY), BATCH))
    assert sorted(rows["customerID"]) == sorted(expected_day["customerID"])
    assert (rows["TotalCharges"].str.strip() != "").all() or rows["TotalCharges"].dtype == "str"


def test_a_multi_file_day_on_s3_is_read_as_one_stream_in_key_order(sources, expected_day):
    _, store = sources
    key = f"billing/ds={DAY}/billing.csv"
    billing = pd.read_csv(io.BytesIO(store.read_bytes(key)), dtype="str", keep_default_na=False)
    store.delete(key)
    half = len(billing) // 2
    store.put_bytes(f"billing/ds={DAY}/part-b.csv", billing.iloc[half:].to_csv(index=False).encode())
    store.put_bytes(f"billing/ds={DAY}/part-a.csv", billing.iloc[:half].to_csv(index=False).encode())

    batches = list(read_files_day(store, SPEC.source("billing"), Partition(DAY), BATCH))

    assert max(b.num_rows for b in batches) <= BATCH
    rows = pa.Table.from_batches(batches).to_pandas()
    assert rows["customerID"].tolist() == billing["customerID"].tolist()
    assert len(rows) == len(expected_day)


def aws_conn(endpoint: str, bucket: str) -> str:
    extra = {"endpoint_url": endpoint, "region_name": "us-east-1", "bucket": bucket}
    return json.dumps({"conn_type": "aws", "login": "testing", "password": "testing", "extra": extra})


def pg_conn(url) -> str:
    return json.dumps(
        {
            "conn_type": "postgres",
            "host": url.host,
            "port": url.port,
            "login": url.username,
            "schema": url.database,
        }
    )


@pytest.fixture
def airflow_env(airflow_db, sources, pg_url, s3_endpoint, s3_client, make_bucket, monkeypatch):
    """Connections for a DAG run: sources and platform tables in PostgreSQL, sources and lake in S3."""
    _, source_store = sources
    lake = S3Store(s3_client, make_bucket("lake"))
    monkeypatch.setenv("AIRFLOW_CONN_CHURN_SOURCE_DB", pg_conn(pg_url))
    monkeypatch.setenv("AIRFLOW_CONN_PLATFORM_DB", pg_conn(pg_url))
    monkeypatch.setenv("AIRFLOW_CONN_CHURN_SOURCE_FILES", aws_conn(s3_endpoint, source_store.bucket))
    monkeypatch.setenv("AIRFLOW_CONN_PLATFORM_LAKE", aws_conn(s3_endpoint, lake.bucket))
    return source_store, lake


def test_ingest_dag_on_postgres_and_s3_is_idempotent(airflow_env, pg_engine, expected_day):
    _, lake = airflow_env
    key = "raw/churn/ds=2025-03-31/part-0.parquet"

    first = run_dag("churn_ingest", DAY)
    assert first.state == "success"
    partition = read_frame(lake, key)
    assert len(partition) == len(expected_day)
    assert sorted(partition["customerID"]) == sorted(expected_day["customerID"])
    assert (partition["ds"] == pd.Timestamp(DAY)).all()

    second = run_dag("churn_ingest", DAY)
    assert second.state == "success"
    pd.testing.assert_frame_equal(read_frame(lake, key), partition)
    with pg_engine.connect() as conn:
        runs = conn.execute(sa.select(ingest_runs)).mappings().all()
    assert len(runs) == 1
    assert runs[0]["rows_written"] == len(expected_day)
    assert runs[0]["rows_read"] == {"snapshots": len(expected_day), "billing": len(expected_day)}


def test_ingest_dag_quarantines_a_bad_row_with_its_reason(airflow_env, pg_engine, expected_day):
    source_store, lake = airflow_env
    billing_key = f"billing/ds={DAY}/billing.csv"
    billing = pd.read_csv(
        io.BytesIO(source_store.read_bytes(billing_key)), dtype="str", keep_default_na=False
    )
    bad_id = billing.loc[0, "customerID"]
    billing.loc[0, "MonthlyCharges"] = "lots"
    source_store.put_bytes(billing_key, billing.to_csv(index=False).encode())

    assert run_dag("churn_ingest", DAY, {"ds": DAY.isoformat()}).state == "success"
    quarantine = read_frame(lake, "quarantine/churn/ds=2025-03-31/part-0.parquet")
    assert set(zip(quarantine["source"], quarantine["entity_id"], strict=True)) == {
        ("billing", bad_id),
        ("snapshots", bad_id),
    }
    assert "MonthlyCharges: not a number: 'lots'" in quarantine.set_index("source").at["billing", "reasons"]
    assert len(read_frame(lake, "raw/churn/ds=2025-03-31/part-0.parquet")) == len(expected_day) - 1


def test_a_structurally_broken_file_fails_the_run_and_writes_nothing(airflow_env, pg_engine):
    source_store, lake = airflow_env
    billing_key = f"billing/ds={DAY}/billing.csv"
    billing = pd.read_csv(io.BytesIO(source_store.read_bytes(billing_key)), dtype="str")
    source_store.put_bytes(billing_key, billing.drop(columns="PaymentMethod").to_csv(index=False).encode())

    assert run_dag("churn_ingest", DAY).state == "failed"
    assert lake.list_keys("raw/") == []
    with pg_engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(ingest_runs)).scalar() == 0
