"""`make bench-serving`: latency and throughput of the scoring service against the demo's champion.

For each scoring path, `fast` (the compiled features and forest, measured as the default `auto`
setting picks it) and `sklearn` (the fitted pipeline as batch calls it), it starts the real service
(`python -m include.serving`) on a free loopback port; an asyncio client (aiohttp by default,
`--client httpx` for httpx; keep-alive connections) then sends 1-row and 100-row requests from 1, 8
and 32 concurrent clients for a fixed time each. Rows are the demo's last ingested day, as a client
sends them. It prints p50 / p99 latency and rows/s, and merges the figures into
`.bench/results.json` under "serving" (other keys are kept).

    python -m tools.bench.serving [--seconds 5] [--engines fast sklearn] [--client aiohttp|httpx]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from tools.localhost import free_port

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
ROW_COUNTS = (1, 100)
CLIENTS = (1, 8, 32)
TARGET_P99_MS = 25.0  # one-row requests, 8 concurrent clients (issue 15)
WARM_UP_SECONDS = 0.5


def demo_rows(use_case: str) -> list[dict[str, Any]]:
    """The rows of the use case's newest ingested partition in the lake, as request rows."""
    from include.config import Settings
    from include.io.connections import store_for
    from include.io.lake import RAW_ZONE, read_frame
    from include.serving.rows import frame_to_rows
    from include.usecases.spec import get_spec

    settings = Settings.from_env()
    lake = store_for(settings.lake_conn_id)
    keys = [k for k in lake.list_keys(f"{RAW_ZONE}/{use_case}/") if k.endswith(".parquet")]
    if not keys:
        raise SystemExit(f"no {use_case} partition in {lake.uri()}: run `make demo` first")
    return frame_to_rows(read_frame(lake, max(keys)), get_spec(use_case, settings.spec_dir))


@contextlib.contextmanager
def service(engine: str, port: int) -> Iterator[str]:
    """The service on `port` with the given scoring path, until the block ends; its base URL."""
    env = {**os.environ, "PLATFORM_SERVING_ENGINE": engine, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "include.serving", "--port", str(port), "--log-level", "warning"]
    process = subprocess.Popen(command, cwd=REPO, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"the service exited with {process.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=1).json()["status"] == "ok":
                    break
            time.sleep(0.2)
        else:
            raise SystemExit("the service did not become healthy within 120 s")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


async def load(
    url: str,
    path: str,
    token: str,
    bodies: Sequence[bytes],
    rows: int,
    clients: int,
    seconds: float,
    client: str = "aiohttp",
) -> dict[str, Any]:
    """`clients` concurrent keep-alive clients posting `bodies` in turn for `seconds`; the figures."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    latencies: list[float] = []
    failed = 0
    async with _session(client, url, headers, clients) as post:

        async def one_client(n: int, until: float, record: bool) -> None:
            nonlocal failed
            turn = n
            while time.perf_counter() < until:
                body = bodies[turn % len(bodies)]
                turn += clients
                started = time.perf_counter()
                status = await post(path, body)
                elapsed = time.perf_counter() - started
                if record:
                    latencies.append(elapsed)
                    failed += status != 200

        warm = time.perf_counter() + WARM_UP_SECONDS
        await asyncio.gather(*(one_client(n, warm, False) for n in range(clients)))
        started = time.perf_counter()
        await asyncio.gather(*(one_client(n, started + seconds, True) for n in range(clients)))
        wall = time.perf_counter() - started
    ms = np.asarray(latencies) * 1000
    return {
        "rows_per_request": rows,
        "clients": clients,
        "requests": len(latencies),
        "failed": failed,
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "rows_per_s": round(len(latencies) * rows / wall, 1),
    }


@contextlib.asynccontextmanager
async def _session(client: str, url: str, headers: dict[str, str], clients: int):
    """A `post(path, body) -> status` on `clients` keep-alive connections, with aiohttp or httpx.

    aiohttp is the default: on two cores the client shares the CPU with the service, and httpx spends
    about twice aiohttp's CPU per request (and degrades past a few dozen connections), which the
    figures would then mostly measure.
    """
    if client == "httpx":
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as http:

            async def post_httpx(path: str, body: bytes) -> int:
                return (await http.post(path, content=body)).status_code

            yield post_httpx
        return
    import aiohttp

    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(url, headers=headers, connector=connector, timeout=timeout) as http:

        async def post_aiohttp(path: str, body: bytes) -> int:
            async with http.post(path, data=body) as answer:
                await answer.read()
                return answer.status

        yield post_aiohttp


def bodies_of(rows: list[dict[str, Any]], size: int, count: int = 64) -> list[bytes]:
    """`count` request bodies of `size` consecutive rows each, spread over the day's rows."""
    step = max(1, (len(rows) - size) // count)
    return [
        json.dumps({"rows": rows[start : start + size]}).encode()
        for start in range(0, max(1, len(rows) - size + 1), step)
    ][:count]


def measure(
    engine: str, use_case: str, token: str, rows: list, seconds: float, client: str
) -> dict[str, Any]:
    """Every (rows per request, clients) case against a service on the `engine` path."""
    # The fast path is measured as the service's default (`auto`) runs it: proof that it is chosen.
    with service("auto" if engine == "fast" else engine, free_port()) as url:
        model = httpx.get(f"{url}/v1/{use_case}/model", headers={"Authorization": f"Bearer {token}"}).json()
        if model["engine"] != engine:
            raise SystemExit(f"expected the {engine} path, the service runs {model['engine']}")
        cases = []
        for size in ROW_COUNTS:
            bodies = bodies_of(rows, size)
            for clients in CLIENTS:
                figures = asyncio.run(
                    load(url, f"/v1/{use_case}/score", token, bodies, size, clients, seconds, client)
                )
                log.info("%s: %s", engine, figures)
                cases.append(figures)
    detail = model["detail"]
    shown = {"version": model["version"], "sha256": model["sha256"]}
    shown |= {"family": detail["family"], "trained_as_of": detail["trained_as_of"]}
    return {"model": shown, "cases": cases}


def table(results: dict[str, Any]) -> str:
    lines = [
        f"Real-time scoring, {results['use_case']} v{results['model']['version']} "
        f"({results['model']['family']}), {results['seconds']} s per case, client: {results['client']}",
        f"{'path':8}  {'rows/request':>12}  {'clients':>7}  {'requests':>8}  {'failed':>6}  "
        f"{'p50 ms':>8}  {'p99 ms':>8}  {'rows/s':>9}",
    ]
    for engine, cases in results["engines"].items():
        for c in cases:
            lines.append(
                f"{engine:8}  {c['rows_per_request']:>12}  {c['clients']:>7}  {c['requests']:>8}  "
                f"{c['failed']:>6}  {c['p50_ms']:>8.2f}  {c['p99_ms']:>8.2f}  {c['rows_per_s']:>9.0f}"
            )
    target = results["target"]
    lines.append(
        f"target: one-row p99 at 8 clients <= {target['p99_ms']} ms; "
        + ", ".join(f"{e}: {p:.2f} ms" for e, p in target["measured"].items())
        + f"; the service's default (`auto`) runs {results['default_engine']}"
    )
    return "\n".join(lines)


def merge_into(path: Path, key: str, value: dict[str, Any]) -> None:
    """Set `key` in the JSON file at `path`, keeping its other keys."""
    existing = json.loads(path.read_text()) if path.exists() else {}
    existing[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(existing, indent=2))


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    from include.serving.settings import ServingSettings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--use-case", default="churn")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured time per case")
    parser.add_argument("--engines", nargs="+", default=["fast", "sklearn"], choices=["fast", "sklearn"])
    parser.add_argument("--client", choices=["aiohttp", "httpx"], default="aiohttp")
    parser.add_argument("--out", type=Path, default=REPO / ".bench" / "results.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    token = ServingSettings.from_env().bearer_token()
    rows = demo_rows(args.use_case)
    load_before = os.getloadavg()[0]
    measured = {e: measure(e, args.use_case, token, rows, args.seconds, args.client) for e in args.engines}
    one_row_8 = {
        e: next(c["p99_ms"] for c in m["cases"] if (c["rows_per_request"], c["clients"]) == (1, 8))
        for e, m in measured.items()
    }
    results = {
        "use_case": args.use_case,
        "model": next(iter(measured.values()))["model"],
        "seconds": args.seconds,
        "client": f"{args.client} {version(args.client)}, asyncio, keep-alive, loopback",
        "engines": {e: m["cases"] for e, m in measured.items()},
        "target": {
            "p99_ms": TARGET_P99_MS,
            "measured": one_row_8,
            "met": {e: p <= TARGET_P99_MS for e, p in one_row_8.items()},
        },
        "default_engine": "fast" if "fast" in measured else "not measured",
        "machine": {"cpus": os.cpu_count(), "load_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)]},
    }
    merge_into(args.out, "serving", results)
    print(table(results))
    return results


if __name__ == "__main__":
    main()
