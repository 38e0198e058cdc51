"""The scoring service's settings, read from the environment in one place, with their defaults.

The bearer token is a credential: it comes from an Airflow connection (its password), or, where no
such connection is defined, from `PLATFORM_SERVING_TOKEN`. There is no default: with neither set the
service refuses to start rather than score anonymously.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

Engine = Literal["auto", "fast", "sklearn"]


class SettingsError(ValueError):
    """A setting the service cannot run with."""


@dataclass(frozen=True)
class ServingSettings:
    """How the service authenticates, follows the registry, and bounds a request.

    Attributes:
        token_conn_id: the Airflow connection whose password is the bearer token.
        token: the token itself, when given as a setting instead (`PLATFORM_SERVING_TOKEN`).
        poll_seconds: how often the registry is asked whether the champion moved.
        max_body_bytes: a larger request body is refused with 413 before it is read.
        max_rows: the most rows one request may score.
        engine: `fast` (the compiled feature path), `sklearn` (the fitted pipeline as batch calls it)
            or `auto` (fast where the pipeline compiles and matches the pipeline on the probe rows).
        use_cases: the use cases to serve; empty means every spec in the spec folder.
        workers: server processes, each with its own model and its own watch of the alias; by
            default one per CPU this process may run on.
    """

    token_conn_id: str = "platform_serving"
    token: str | None = None
    poll_seconds: float = 5.0
    max_body_bytes: int = 1_048_576
    max_rows: int = 1000
    engine: Engine = "auto"
    use_cases: tuple[str, ...] = ()
    workers: int = 1

    @classmethod
    def from_env(cls) -> ServingSettings:
        engine = os.environ.get("PLATFORM_SERVING_ENGINE", "auto")
        if engine not in ("auto", "fast", "sklearn"):
            raise SettingsError(f"PLATFORM_SERVING_ENGINE: {engine!r} is not one of auto, fast, sklearn")
        names = os.environ.get("PLATFORM_SERVING_USE_CASES", "")
        return cls(
            token_conn_id=os.environ.get("PLATFORM_SERVING_CONN_ID", "platform_serving"),
            token=os.environ.get("PLATFORM_SERVING_TOKEN") or None,
            poll_seconds=float(os.environ.get("PLATFORM_SERVING_POLL_SECONDS", "5")),
            max_body_bytes=int(os.environ.get("PLATFORM_SERVING_MAX_BODY_BYTES", "1048576")),
            max_rows=int(os.environ.get("PLATFORM_SERVING_MAX_ROWS", "1000")),
            engine=engine,  # type: ignore[arg-type]
            use_cases=tuple(n.strip() for n in names.split(",") if n.strip()),
            workers=int(os.environ.get("PLATFORM_SERVING_WORKERS") or len(os.sched_getaffinity(0))),
        )

    def bearer_token(self) -> str:
        """The token a client must present: the connection's password, else the setting.

        Raises:
            SettingsError: when neither is set (the service never scores anonymously).
        """
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            password = BaseHook.get_connection(self.token_conn_id).password
        except AirflowNotFoundException:
            password = None
        token = password or self.token
        if not token:
            raise SettingsError(
                f"no bearer token: define the connection {self.token_conn_id!r} (its password is the "
                'token, e.g. AIRFLOW_CONN_PLATFORM_SERVING=\'{"conn_type": "http", "password": ...}\') '
                "or set PLATFORM_SERVING_TOKEN; the service does not score anonymously"
            )
        return token
