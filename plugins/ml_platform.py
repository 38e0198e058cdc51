"""The ML platform's page in Airflow's UI: the app `include.ui.app` mounted in the API server.

An external view (an iframe of server-rendered pages) rather than a React app: the pages need no
build step and no bundle, every byte comes from this app (air-gapped installs fetch nothing), and
the iframe is same-origin, so the UI's `_token` cookie reaches the app, which checks it itself.
"""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

from include.ui import NAV_NAME, NAV_ROUTE, URL_PREFIX
from include.ui.app import create_app


class MlPlatformPlugin(AirflowPlugin):
    name = "ml_platform"
    fastapi_apps: ClassVar[list[dict[str, Any]]] = [
        {"app": create_app(), "url_prefix": URL_PREFIX, "name": NAV_NAME}
    ]
    external_views: ClassVar[list[dict[str, Any]]] = [
        {
            "name": NAV_NAME,
            "href": f"{URL_PREFIX}/",
            "url_route": NAV_ROUTE,
            "destination": "nav",
        }
    ]
