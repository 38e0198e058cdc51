"""A local Airflow started and stopped by process group, and its REST API.

`StandaloneAirflow` (`airflow standalone`) runs the demo; `LocalAirflow` (scheduler, dag-processor,
triggerer and API server as separate processes) runs the end-to-end tests. Both: start it, get a
token, call `/api/v2`, stop it.
"""

from __future__ import annotations

import contextlib
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
from collections import Counter
from collections.abc import Iterable
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


COMPONENTS = ("scheduler", "dag-processor", "triggerer", "api-server")


class LocalAirflow:
    """Airflow's components as separate processes on loopback, each in its own session (process group).

    Stopping sends SIGTERM to every group, then SIGKILL to any left after the timeout, so workers and
    other children go too. Each component logs to `<log_dir>/<component>.log`.
    """

    components: tuple[str, ...] = COMPONENTS

    def __init__(
        self, env: dict[str, str], log_dir: Path, port: int = 8080, stop_timeout: float = 30
    ) -> None:
        self.port = port
        self.log_dir = log_dir
        self.stop_timeout = stop_timeout
        bin_dir = str(Path(sys.executable).parent)
        self.env = {
            **env,
            "PATH": bin_dir + os.pathsep + env.get("PATH", ""),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        }
        self.processes: dict[str, subprocess.Popen] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_file(self, component: str) -> Path:
        return self.log_dir / f"{component}.log"

    def command(self, component: str) -> list[str]:
        """The command line that runs `component`."""
        return ["airflow", component]

    def component_env(self, component: str) -> dict[str, str]:
        """The environment `component` runs in: the one every component shares."""
        return self.env

    def start(self, timeout: float = 120) -> None:
        """Start every component and wait until the API reports them healthy."""
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                raise RuntimeError(f"port {self.port} is taken: is another Airflow running? Stop it first.")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for component in self.components:
            self._spawn(component, self.component_env(component))
        started = time.monotonic()
        deadline, said = started + timeout, started
        while time.monotonic() < deadline:
            try:
                self.check_running()
            except RuntimeError:
                self.stop()
                raise
            if self._healthy():
                return
            if time.monotonic() - said >= 10:
                said = time.monotonic()
                log.info("waiting for Airflow to report healthy: %d s", said - started)
            time.sleep(1)
        self.stop()
        raise TimeoutError(f"Airflow was not healthy after {timeout:.0f}s; see {self.log_dir}")

    def _spawn(self, component: str, env: dict[str, str]) -> None:
        """Start one component in its own session (process group), logging to its file."""
        with self.log_file(component).open("ab") as out:
            self.processes[component] = subprocess.Popen(
                self.command(component), env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def crash(self, component: str) -> None:
        """SIGKILL one component's whole process group, as a lost machine would: no cleanup, and the
        tasks it ran (a scheduler's LocalExecutor children) die with it."""
        process = self.processes[component]
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def restart(self, component: str, **settings: str) -> None:
        """Start `component` again (after `crash`), with `settings` added to its environment."""
        self._spawn(component, {**self.component_env(component), **settings})

    def check_running(self) -> None:
        """Raise if a component has exited (a crashed scheduler would otherwise look like a slow run)."""
        for component, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(
                    f"airflow {component} exited with {process.returncode}; see {self.log_file(component)}"
                )

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/api/v2/monitor/health", timeout=2) as response:
                health = json.loads(response.read())
        except (OSError, ValueError):
            return False
        return all(
            (health.get(part) or {}).get("status") == "healthy"
            for part in ("scheduler", "triggerer", "dag_processor")
        )

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM to each component's process group; after the leaders exit (or `timeout`), SIGKILL
        to whatever is left in the groups, so no orphaned worker survives."""
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes.values():
            try:
                process.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                log.warning("process group %d did not stop in %.0fs: killing it", process.pid, timeout)
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def __enter__(self) -> LocalAirflow:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop(self.stop_timeout)


class StandaloneAirflow(LocalAirflow):
    """`airflow standalone` (every component under one parent) in its own process group."""

    components = ("standalone",)

    def __init__(self, env: dict[str, str], log_path: Path, port: int = 8080) -> None:
        super().__init__(env, log_path.parent, port)
        self.log_path = log_path

    def log_file(self, component: str) -> Path:
        return self.log_path

    @property
    def process(self) -> subprocess.Popen | None:
        return self.processes.get("standalone")


def airflow_cli(args: list[str], env: dict[str, str], log_path: Path) -> None:
    """One Airflow CLI call in `env`, its output appended to `log_path`; raises naming the log if it fails."""
    log.info("airflow %s", " ".join(args))  # each call takes 5-15 s: say what is going on
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as out:
        airflow = str(Path(sys.executable).parent / "airflow")
        done = subprocess.run([airflow, *args], env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode:
        raise RuntimeError(f"airflow {' '.join(args)} exited with {done.returncode}; see {log_path}")


class Progress:
    """Logs a phase's runs done out of its total, by state, with the time elapsed: at most one line
    every `every` seconds, and the last one whatever the time."""

    def __init__(self, phase: str, total: int, every: float = 10.0) -> None:
        self.phase, self.total, self.every = phase, total, every
        self.started = self.last = time.monotonic()

    def due(self) -> bool:
        """Whether the next call would log (callers skip gathering the states otherwise)."""
        return time.monotonic() - self.last >= self.every

    def __call__(self, states: Iterable[str], final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self.last < self.every:
            return
        self.last = now
        counts = Counter(states)
        done = counts["success"] + counts["failed"]
        by_state = ", ".join(f"{state} {n}" for state, n in sorted(counts.items()))
        elapsed = int(now - self.started)
        log.info(
            "%s: %d/%d runs done (%s), %dm %02ds",
            self.phase,
            done,
            self.total,
            by_state or "none yet",
            elapsed // 60,
            elapsed % 60,
        )


def wait_for_backfill(
    api: AirflowApi, backfill_id: int, timeout: float = 600, progress: Progress | None = None
) -> dict:
    """Poll until the backfill completes (reporting its runs to `progress`); returns it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        backfill = api.get(f"/backfills/{backfill_id}")
        done = bool(backfill.get("completed_at"))
        if progress and (done or progress.due()):
            states = run_states(api, backfill["dag_id"])
            progress([s for r, s in states.items() if r.startswith("backfill__")], final=done)
        if done:
            return backfill
        time.sleep(2)
    raise TimeoutError(f"backfill {backfill_id} not complete after {timeout:.0f}s")


def in_flight(api: AirflowApi, dag_ids: Iterable[str]) -> dict[str, list[str]]:
    """What is still to run for each DAG: its queued or running runs (by run id) and its queued
    asset events (a retrain asked for, whose run the scheduler has yet to create)."""
    busy: dict[str, list[str]] = {}
    for dag_id in dag_ids:
        # Events first: an event turns into a queued run, so a run made between the two calls is seen.
        events = api.get(f"/dags/{dag_id}/assets/queuedEvents")["queued_events"]
        runs = api.get(f"/dags/{dag_id}/dagRuns?state=queued&state=running&limit=100")["dag_runs"]
        pending = [r["dag_run_id"] for r in runs] + [f"asset event {e['asset_id']} queued" for e in events]
        if pending:
            busy[dag_id] = pending
    return busy


def wait_until_idle(api: AirflowApi, dag_ids: Iterable[str], timeout: float = 600, poll: float = 3) -> float:
    """Wait until no run of `dag_ids` is queued or running and no asset event waits for them, on two
    polls in a row (a task that ends between two calls may still queue a run); the seconds waited.

    Raises:
        TimeoutError: naming what is still in flight after `timeout` seconds.
    """
    dag_ids = list(dag_ids)
    started = time.monotonic()
    deadline, said, quiet = started + timeout, started, 0
    while True:
        busy = in_flight(api, dag_ids)
        quiet = 0 if busy else quiet + 1
        if quiet >= 2:
            return time.monotonic() - started
        now = time.monotonic()
        if now >= deadline:
            raise TimeoutError(
                f"still in flight after {timeout:.0f}s: "
                + "; ".join(f"{dag}: {', '.join(ids)}" for dag, ids in busy.items())
            )
        if busy and now - said >= 10:
            said = now
            log.info(
                "waiting for runs in flight (%d s): %s",
                now - started,
                "; ".join(f"{dag}: {', '.join(ids)}" for dag, ids in busy.items()),
            )
        time.sleep(poll)


def run_states(api: AirflowApi, dag_id: str) -> dict[str, str]:
    """The state of every run of a DAG, by run id."""
    runs = api.get(f"/dags/{dag_id}/dagRuns?limit=1000")["dag_runs"]
    return {run["dag_run_id"]: run["state"] for run in runs}


def wait_for_dag(api: AirflowApi, dag_id: str, timeout: float = 120) -> None:
    """Poll until the dag-processor has parsed and serialized the DAG."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            api.get(f"/dags/{dag_id}/details")
            return
        except AirflowApiError as exc:
            if exc.status != 404:
                raise
        time.sleep(1)
    raise TimeoutError(f"{dag_id} not parsed after {timeout:.0f}s")


def trigger_run(api: AirflowApi, dag_id: str, conf: dict, logical_date: str | None = None) -> str:
    """Trigger one run (no logical date unless given, as the UI's cleared date field); its run id."""
    body = {"logical_date": logical_date, "conf": conf}
    return api.post(f"/dags/{dag_id}/dagRuns", body)["dag_run_id"]


def create_backfill(
    api: AirflowApi,
    dag_id: str,
    first: str,
    last: str,
    reprocess: str = "none",
    conf: dict | None = None,
    max_active_runs: int = 8,
) -> dict:
    """Create a backfill of the days [first, last] (`YYYY-MM-DD`); the scheduler runs it."""
    return api.post(
        "/backfills",
        {
            "dag_id": dag_id,
            "from_date": f"{first}T00:00:00Z",
            "to_date": f"{last}T00:00:00Z",
            "reprocess_behavior": reprocess,
            "dag_run_conf": conf or {},
            "max_active_runs": max_active_runs,
        },
    )


def wait_for_runs(
    api: AirflowApi, dag_id: str, run_ids: list[str], timeout: float = 900, progress: Progress | None = None
) -> dict[str, str]:
    """Wait until every run has finished (reporting them to `progress`); their states by run id."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = {r: api.get(f"/dags/{dag_id}/dagRuns/{r}")["state"] for r in run_ids}
        done = all(s in ("success", "failed") for s in states.values())
        if progress:
            progress(states.values(), final=done)
        if done:
            return states
        time.sleep(2)
    raise TimeoutError(f"{dag_id}: runs not finished after {timeout:.0f}s")
