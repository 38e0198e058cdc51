"""The ingest task's body: the run's context in, the day's partition and run record out."""

from __future__ import annotations

from typing import Any

from include.config import Settings
from include.usecases.spec import get_spec


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
    result = ingest_partition(
        spec,
        partition,
        raw=raw,
        lake=store_for(settings.lake_conn_id),
        platform=platform_engine(settings.platform_db_conn_id),
        run_id=context["run_id"],
    )
    context["outlet_events"][raw_asset(use_case)].extra = {"ds": partition.key}
    return result.to_dict()
