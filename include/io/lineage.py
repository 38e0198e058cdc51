"""Lineage: the datasets a task read and wrote, handed to Airflow's hook lineage collector.

When the OpenLineage provider is configured (a transport set: docs/operating.md, "Lineage"), its
listener reads the collector as the task ends and sends the datasets with the task's events, so a
lineage server links source tables and files, lake partitions, model files and prediction tables
through the jobs that made them. Without a configured lineage reader, or outside a task, the
collector is Airflow's no-op one and reporting costs nothing.

Datasets are named by URI as the providers translate them to OpenLineage names: `file://<path>`,
`s3://<bucket>/<key>`, `postgres://<host>:<port>/<database>/<schema>/<table>`. OpenLineage has no
scheme for SQLite; a SQLite table is `file://<database file>/<table>`.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa


class _Reporter:
    """The context the collector files a task's datasets under (one per process: the task)."""


_REPORTER = _Reporter()


def table_uri(engine: sa.Engine, table: str) -> str:
    """The lineage URI of `table` (optionally `schema.table`) in the database behind `engine`."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        return f"file://{url.database}/{table}"
    if url.get_backend_name() == "postgresql":
        schema, _, name = table.rpartition(".")
        where = f"{url.host or 'localhost'}:{url.port or 5432}"
        return f"postgres://{where}/{url.database}/{schema or 'public'}/{name}"
    raise ValueError(f"no lineage name for a table in a {url.get_backend_name()} database ({table})")


def report_lineage(read: Iterable[str] = (), wrote: Iterable[str] = ()) -> None:
    """Report the URIs the running task read and wrote."""
    from airflow.sdk.lineage import get_hook_lineage_collector

    collector = get_hook_lineage_collector()
    for uri in read:
        collector.add_input_asset(context=_REPORTER, uri=uri)
    for uri in wrote:
        collector.add_output_asset(context=_REPORTER, uri=uri)
