"""The DAG adapter layer: Airflow's task context in, the stages' typed `RunFacts` out.

With `include.alerting` (whose notifier's signature Airflow sets), the only module that reads a
task's context. A DAG task calls `run_facts(use_case, context)` once and hands the result, with
`Stores.from_settings()`, to a stage function in `include.<stage>.task`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from include.partition import Partition, check_params, resolve_partition
from include.runs import RunFacts, Stores


def partition_from_context(context: Mapping[str, Any], tz: str = "UTC") -> Partition:
    """The day an Airflow task instance processes, from its context; its params checked first."""
    check_params(context.get("params") or {})
    return _day_of(context, tz)


def _day_of(context: Mapping[str, Any], tz: str) -> Partition:
    """The day of a task instance whose params are checked already."""
    dag_run = context.get("dag_run")
    return resolve_partition(
        (context.get("params") or {}).get("ds"),
        context.get("logical_date"),
        getattr(dag_run, "run_after", None),
        tz,
        _triggering_event_ds(context),
        backfill=str(getattr(dag_run, "run_type", "")) == "backfill",
    )


def _triggering_event_ds(context: Mapping[str, Any]) -> str | None:
    """The newest `ds` in the extras of the asset events that triggered the run, if any."""
    events = context.get("triggering_asset_events") or {}
    days = [e.extra["ds"] for listed in events.values() for e in listed if (e.extra or {}).get("ds")]
    return max(days, default=None)


def run_facts(use_case: str, context: Mapping[str, Any]) -> RunFacts:
    """The run's facts from a task's context: its spec (read once, hashed), day, id and params."""
    return RunFacts.build(
        use_case,
        context["run_id"],
        context.get("params") or {},
        lambda tz: _day_of(context, tz),  # `build` checks the params first
    )


def stores() -> Stores:
    """The lake and the platform database named by the environment's settings."""
    return Stores.from_settings()


def tag_event(context: Mapping[str, Any], asset: Any, extra: dict[str, Any]) -> None:
    """Tag the asset event the task emits with `extra` (the day it is about)."""
    context["outlet_events"][asset].extra = extra
