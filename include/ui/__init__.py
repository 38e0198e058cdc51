"""The platform's page in Airflow's UI: a FastAPI app (JSON API and server-rendered pages).

`plugins/ml_platform.py` mounts it in the API server at `URL_PREFIX` and adds the navigation entry
"ML platform", an iframe of the app at `/plugin/<NAV_ROUTE>` in Airflow's UI.
"""

from __future__ import annotations

URL_PREFIX = "/ml"
NAV_ROUTE = "ml-platform"
NAV_NAME = "ML platform"


def page_urls(airflow_url: str, use_case: str) -> tuple[str, str]:
    """The navigation entry in Airflow's UI, and the use case's page itself."""
    base = airflow_url.rstrip("/")
    return f"{base}/plugin/{NAV_ROUTE}", f"{base}{URL_PREFIX}/{use_case}/"
