"""Lineage names: a table's URI per database, and the OpenLineage dataset each URI becomes."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from include.io.lineage import table_uri
from tools.demo.lineage import dataset_of


def test_a_sqlite_table_is_named_by_its_database_file():
    engine = sa.create_engine("sqlite:////data/platform.db")
    assert table_uri(engine, "predictions") == "file:///data/platform.db/predictions"
    assert dataset_of(table_uri(engine, "predictions")) == ("file", "/data/platform.db/predictions")


def test_a_postgres_table_is_named_by_host_port_database_and_schema():
    engine = sa.create_engine("postgresql+psycopg2://ml@db.internal/platform")
    assert table_uri(engine, "predictions") == "postgres://db.internal:5432/platform/public/predictions"
    assert table_uri(engine, "sales.orders") == "postgres://db.internal:5432/platform/sales/orders"
    assert dataset_of(table_uri(engine, "sales.orders")) == (
        "postgres://db.internal:5432",
        "platform.sales.orders",
    )


def test_another_database_is_refused_naming_the_table():
    engine = SimpleNamespace(url=sa.make_url("mysql://ml@db/platform"))  # no MySQL driver here
    with pytest.raises(ValueError, match=r"mysql database \(orders\)"):
        table_uri(engine, "orders")


def test_files_and_objects_become_their_path_and_bucket_key():
    assert dataset_of("file:///lake/raw/churn/ds=2025-03-31/part-0.parquet") == (
        "file",
        "/lake/raw/churn/ds=2025-03-31/part-0.parquet",
    )
    assert dataset_of("s3://lake/models/churn/v1.skops") == ("s3://lake", "models/churn/v1.skops")
