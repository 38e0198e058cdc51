"""The ingest task's body: the run's day in, the day's partition and run record out."""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:
    from include.ingest.pipeline import IngestResult
    from include.runs import RunFacts, Stores

log = logging.getLogger(__name__)


def run_ingest(run: RunFacts, stores: Stores) -> IngestResult:
    """Ingest the run's day: read the sources, check and join their rows, replace the partition."""
    from include.ingest.pipeline import ingest_partition, read_sources
    from include.io.connections import engine_for, store_for
    from include.io.lineage import report_lineage

    raw = read_sources(run.spec, run.partition, engine_for, store_for)
    withdraw_ingest_run(stores.platform, run.use_case, run.ds)
    result = ingest_partition(
        run.spec, run.partition, raw=raw, lake=stores.lake, platform=stores.platform, run_id=run.run_id
    )
    report_lineage(wrote=[result.partition_uri])
    return result


def withdraw_ingest_run(platform: sa.Engine, use_case: str, ds: dt.date) -> None:
    """Delete the day's run record before its quarantine and partition are rewritten.

    The record is the day's commit marker, written last: a run killed between its writes then
    leaves no record vouching for the old counts beside a new quarantine or partition, and
    scoring's sensor waits for a rerun that completes, instead of trusting a stale record.
    """
    from include.platform.day_swap import replace_rows
    from include.platform.tables import ingest_runs

    with platform.begin() as conn:
        replace_rows(conn, ingest_runs, {"use_case": use_case, "ds": ds}, [])
    log.info("%s, ds=%s: run record withdrawn until this run writes its own", use_case, ds)
