"""A local Airflow (`airflow standalone`) started and stopped by process group, and its REST API.

Used by the demo and by the end-to-end tests: start it, get a token, call `/api/v2`, stop it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

log = logging.getLogger(__name__)


class AirflowApiError(RuntimeError):
    """A REST call that Airflow refused; the message has the status and Airflow's detail."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status


class AirflowApi:
    """The REST API (`/api/v2`) with a bearer token from `/auth/token`."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url.rstrip("/")
        body = self._send("POST", "/auth/token", {"username": username, "password": password}, None)
        self.token = body["access_token"]

    def _send(self, method: str, path: str, body: dict | None, token: str | None) -> dict:
        request = urllib.request.Request(
            self.base_url + path,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={
                "Content-Type": "application/json",
                **({"Authorization": f"Bearer {token}"} if token else {}),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as exc:
            raise AirflowApiError(exc.code, exc.read().decode()) from None
        return json.loads(text) if text else {}

    def get(self, path: str) -> dict:
        return self._send("GET", "/api/v2" + path, None, self.token)

    def post(self, path: str, body: dict) -> dict:
        return self._send("POST", "/api/v2" + path, body, self.token)

    def patch(self, path: str, body: dict) -> dict:
        return self._send("PATCH", "/api/v2" + path, body, self.token)


class StandaloneAirflow:
    """`airflow standalone` in its own process group, so stopping it stops every child."""

    def __init__(self, env: dict[str, str], log_path: Path, port: int = 8080) -> None:
        self.port = port
        self.log_path = log_path
        bin_dir = str(Path(sys.executable).parent)
        self.env = {
            **env,
            "PATH": bin_dir + os.pathsep + env.get("PATH", ""),
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        }
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120) -> None:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                raise RuntimeError(f"port {self.port} is taken: is another Airflow running? Stop it first.")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                ["airflow", "standalone"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"airflow standalone exited with {self.process.returncode}; see {self.log_path}"
                )
            if self._healthy():
                return
            time.sleep(1)
        self.stop()
        raise TimeoutError(f"Airflow was not healthy after {timeout:.0f}s; see {self.log_path}")

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/api/v2/monitor/health", timeout=2) as response:
                health = json.loads(response.read())
        except (OSError, ValueError):
            return False
        return health.get("scheduler", {}).get("status") == "healthy"

    def stop(self, timeout: float = 30) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __enter__(self) -> StandaloneAirflow:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_for_backfill(api: AirflowApi, backfill_id: int, timeout: float = 600) -> dict:
    """Poll until the backfill completes; returns it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        backfill = api.get(f"/backfills/{backfill_id}")
        if backfill.get("completed_at"):
            return backfill
        time.sleep(2)
    raise TimeoutError(f"backfill {backfill_id} not complete after {timeout:.0f}s")


def run_states(api: AirflowApi, dag_id: str) -> dict[str, str]:
    """The state of every run of a DAG, by run id."""
    runs = api.get(f"/dags/{dag_id}/dagRuns?limit=1000")["dag_runs"]
    return {run["dag_run_id"]: run["state"] for run in runs}
