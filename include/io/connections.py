"""Airflow connection ids turned into clients: SQLAlchemy engines and object stores.

The only module that knows how a connection is shaped. Databases go through the providers' hooks
(`PostgresHook`, `SqliteHook`); buckets through `S3Hook` (conn type `aws`, extra `bucket` and an
optional `prefix`), folders through conn type `fs` (extra `path`).
"""

from __future__ import annotations

from functools import cache

import sqlalchemy as sa

from include.io.stores import LocalStore, ObjectStore, S3Store


@cache
def engine_for(conn_id: str) -> sa.Engine:
    """The SQLAlchemy engine behind a database connection id."""
    from airflow.sdk import BaseHook

    hook = BaseHook.get_connection(conn_id).get_hook()
    if not hasattr(hook, "get_sqlalchemy_engine"):
        raise ValueError(f"connection {conn_id!r} is not a SQL database connection")
    return hook.get_sqlalchemy_engine()


def store_for(conn_id: str) -> ObjectStore:
    """The object store behind a bucket (`aws`) or folder (`fs`) connection id."""
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    extra = conn.extra_dejson
    if conn.conn_type == "fs":
        if "path" not in extra:
            raise ValueError(f"connection {conn_id!r} (fs) needs extra `path`")
        return LocalStore(extra["path"])
    if conn.conn_type == "aws":
        if "bucket" not in extra:
            raise ValueError(f"connection {conn_id!r} (aws) needs extra `bucket`")
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        client = S3Hook(aws_conn_id=conn_id).get_conn()
        return S3Store(client, extra["bucket"], extra.get("prefix", ""))
    raise ValueError(f"connection {conn_id!r} has type {conn.conn_type!r}; a store needs `aws` or `fs`")
