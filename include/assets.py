"""The Airflow Assets the DAGs produce and consume, named in one place.

Asset events carry the day they are about in `extra["ds"]`, so a downstream run knows its partition.
"""

from __future__ import annotations

from airflow.sdk import Asset


def raw_asset(use_case: str) -> Asset:
    """A use case's validated daily partitions in the lake (`raw/<use case>/ds=...`)."""
    return Asset(name=f"{use_case}_raw", uri=f"lake://raw/{use_case}", group="lake")


def retrain_asset(use_case: str) -> Asset:
    """Requests to retrain a use case's model, emitted by scoring when its inputs drift."""
    return Asset(name=f"{use_case}_retrain_request", uri=f"platform://retrain/{use_case}", group="ml")
