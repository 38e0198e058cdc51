"""The ingest task's body: the run's context in, the day's partition and run record out."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import sqlalchemy as sa

from include.config import Settings
from include.usecases.spec import get_spec

log = logging.getLogger(__name__)


def run_ingest(use_case: str, context: Any) -> dict:
    """Ingest the run's day for `use_case` and tag the emitted asset event with it."""
    from include.assets import raw_asset
    from include.ingest.pipeline import ingest_partition, read_sources
    from include.io.connections import engine_for, store_for
    from include.partition import partition_from_context
    from include.platform.schema import platform_engine

    settings = Settings.from_env()
    spec = get_spec(use_case, settings.spec_dir)
    partition = partition_from_context(context, spec.schedule.timezone)
    raw = read_sources(spec, partition, engine_for, store_for)
    platform = platform_engine(settings.platform_db_conn_id)
    withdraw_ingest_run(platform, use_case, partition.ds)
    result = ingest_partition(
        spec,
        partition,
        raw=raw,
        lake=store_for(settings.lake_conn_id),
        platform=platform,
        run_id=context["run_id"],
    )
    context["outlet_events"][raw_asset(use_case)].extra = {"ds": partition.key}
    return result.to_dict()


def withdraw_ingest_run(platform: sa.Engine, use_case: str, ds: dt.date) -> None:
    """Delete the day's run record before its quarantine and partition are rewritten.

    The record is the day's commit marker, written last: a run killed between its writes then
    leaves no record vouching for the old counts beside a new quarantine or partition, and
    scoring's sensor waits for a rerun that completes, instead of trusting a stale record.
    """
    from include.platform.tables import ingest_runs, replace_rows

    with platform.begin() as conn:
        replace_rows(conn, ingest_runs, {"use_case": use_case, "ds": ds}, [])
    log.info("%s, ds=%s: run record withdrawn until this run writes its own", use_case, ds)
