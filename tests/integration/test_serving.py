"""The scoring service on a real registry and lake: the batch's answers, the swap under load, bad files.

The world: eleven ingested days of the real Telco rows (the last one holding all of them, with a few
null TotalCharges), v1 (logistic regression) as champion and v2 (hist gradient boosting) registered,
on SQLite (the embedded default) and on PostgreSQL. The swap runs the real entry point
(`python -m include.serving`, uvicorn on a free loopback port) while clients keep scoring.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator

import httpx
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from include.ingest.pipeline import ingest_partition, read_sources
from include.io.lake import read_days, read_frame, write_frame
from include.io.stores import LocalStore
from include.partition import Partition
from include.platform.schema import upgrade
from include.registry.registry import Registry
from include.serving.app import app_from_env, create_app
from include.serving.champion import ChampionSource
from include.serving.rows import frame_to_rows, rows_to_frame
from include.serving.service import ScoringService
from include.serving.settings import ServingSettings
from include.usecases.spec import get_spec
from tests.conftest import REPO, free_port, postgres_database, register_model, use_platform
from tests.integration.test_scoring import day_predictions, score
from tools.demo.seed import seed

pytestmark = pytest.mark.integration

SPEC = get_spec("churn")
TRAINING_DAYS = [dt.date(2025, 3, 1) + dt.timedelta(days=n) for n in range(10)]
DAY = dt.date(2025, 3, 31)
TOKEN = "integration-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def platform(request, tmp_path_factory):
    """The platform database for the module: a SQLite file, or a fresh PostgreSQL database."""
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path_factory.mktemp('platform') / 'platform.db'}"
        else:
            url = stack.enter_context(postgres_database("serving_test"))
        engine = sa.create_engine(url)
        yield engine
        engine.dispose()


@pytest.fixture(scope="module")
def world(platform, tmp_path_factory):
    """Ingested days, v1 champion and v2 registered, and the connections a task and the service use."""
    tmp = tmp_path_factory.mktemp("serving")
    sources = sa.create_engine(f"sqlite:///{tmp / 'source.db'}")
    bucket, lake = LocalStore(tmp / "bucket"), LocalStore(tmp / "lake")
    seed(sources, bucket, SPEC)
    upgrade(platform)
    for day in [*TRAINING_DAYS, DAY]:
        raw = read_sources(SPEC, Partition(day), lambda _: sources, lambda _: bucket)
        ingest_partition(SPEC, Partition(day), raw=raw, lake=lake, platform=platform, run_id=f"ingest-{day}")
    training, _ = read_days(lake, "raw", "churn", TRAINING_DAYS[0], TRAINING_DAYS[-1])
    everything, _ = read_days(lake, "raw", "churn", TRAINING_DAYS[0], DAY)
    everything.loc[everything.index[:7], "TotalCharges"] = np.nan  # a nullable feature, null
    write_frame(lake, f"raw/churn/ds={DAY}/part-0.parquet", everything)
    registry = Registry(platform)
    v1 = register_model(
        registry, lake, SPEC, training, TRAINING_DAYS[-1], "logistic_regression", {"C": 1.0}, "v1"
    )
    assert registry.promote("churn", v1, None).promoted
    params = {"max_iter": 50, "max_leaf_nodes": 15, "learning_rate": 0.1}
    later = TRAINING_DAYS[-1] + dt.timedelta(days=5)
    register_model(registry, lake, SPEC, training, later, "hist_gradient_boosting", params, "v2")

    with pytest.MonkeyPatch.context() as env:
        use_platform(env, platform, lake.root)
        env.setenv("PLATFORM_SERVING_TOKEN", TOKEN)
        yield platform, lake, registry


def request_rows(lake, day: dt.date) -> list[dict]:
    """The day's partition as a client sends it: features and the id, nulls as null."""
    return frame_to_rows(read_frame(lake, f"raw/churn/ds={day}/part-0.parquet"), SPEC)


def online(client: TestClient, rows: list[dict], chunk: int = 500) -> pd.DataFrame:
    predictions = []
    for start in range(0, len(rows), chunk):
        answer = client.post("/v1/churn/score", json={"rows": rows[start : start + chunk]}, headers=AUTH)
        assert answer.status_code == 200, answer.text
        predictions += answer.json()["predictions"]
    return pd.DataFrame(predictions).sort_values("entity_id").reset_index(drop=True)


def assert_online_equals_batch(world, engine: str, monkeypatch) -> None:
    platform, lake, registry = world
    summary = score(DAY)  # the nightly task's body, as the DAG calls it
    batch = day_predictions(platform, DAY).sort_values("entity_id").reset_index(drop=True)
    rows = request_rows(lake, DAY)
    assert len(batch) == len(rows) == summary.rows_scored > 800
    monkeypatch.setenv("PLATFORM_SERVING_ENGINE", engine)
    with TestClient(app_from_env()) as client:
        assert client.get("/v1/churn/model", headers=AUTH).json()["engine"] == engine
        answers = online(client, rows)
    champion = registry.champion("churn")
    assert answers["entity_id"].tolist() == batch["entity_id"].tolist()
    assert set(answers["model_version"]) == set(batch["model_version"]) == {champion.version}
    assert set(answers["model_sha256"]) == {champion.sha256}
    assert answers["predicted_label"].tolist() == batch["predicted_label"].tolist()
    difference = np.abs(answers["score"].to_numpy() - batch["score"].to_numpy())
    assert difference.max() <= 1e-12, f"largest difference {difference.max():.3g}"
    assert answers["score"].nunique() > 100


@pytest.mark.parametrize("engine", ["fast", "sklearn"])
def test_online_scores_equal_the_nightly_batch(world, engine, monkeypatch):
    assert_online_equals_batch(world, engine, monkeypatch)


@contextlib.contextmanager
def running_service(log_path) -> Iterator[str]:
    """`python -m include.serving` on a free loopback port with two worker processes, each polling the
    alias every 0.1 s; its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PLATFORM_SERVING_POLL_SECONDS": "0.1", "PYTHONPATH": str(REPO)}
    env["PLATFORM_SERVING_WORKERS"] = "2"
    command = [sys.executable, "-m", "include.serving", "--port", str(port), "--log-level", "warning"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 90
            while not serving(url):
                assert process.poll() is None, f"the service exited: {log_path.read_text()}"
                assert time.monotonic() < deadline, "the service did not come up"
                time.sleep(0.2)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=20)


def serving(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1).json()["status"] == "ok"
    except (httpx.HTTPError, ValueError):
        return False


def wait_for(condition, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


def test_the_alias_moves_under_load_with_no_failed_or_mixed_request(world, tmp_path):
    platform, lake, registry = world
    rows = request_rows(lake, DAY)[:10]
    source = ChampionSource(platform, lake)
    expected = {
        v: source.load(registry.get("churn", v)).predict_proba(rows_to_frame(rows, SPEC)) for v in (1, 2)
    }
    assert np.abs(expected[1] - expected[2]).min() > 1e-6  # the two versions are told apart by score
    answers: dict[int, list] = defaultdict(list)
    stop = threading.Event()

    with running_service(tmp_path / "service.log") as url:

        def client(n: int) -> None:
            with httpx.Client(base_url=url, headers=AUTH, timeout=10) as http:
                while not stop.is_set():
                    answer = http.post("/v1/churn/score", json={"rows": rows})
                    answers[n].append((answer.status_code, answer.json()))

        clients = [threading.Thread(target=client, args=(n,)) for n in range(4)]
        try:
            for thread in clients:
                thread.start()
            wait_for(lambda: all(len(answers[n]) >= 5 for n in range(4)))  # all scoring with v1 first
            assert registry.promote("churn", 2, expected=1).promoted
            wait_for(lambda: all(answers[n][-1][1].get("model_version") == 2 for n in range(4)))
            time.sleep(0.5)
        finally:
            stop.set()
            for thread in clients:
                thread.join()
        info = httpx.get(f"{url}/v1/churn/model", headers=AUTH).json()

        def fresh_connections() -> set[int]:  # spread over both workers by the kernel (SO_REUSEPORT)
            return {
                httpx.post(f"{url}/v1/churn/score", json={"rows": rows}, headers=AUTH).json()["model_version"]
                for _ in range(12)
            }

        wait_for(lambda: fresh_connections() == {2})
        assert fresh_connections() == {2}  # every worker moved

    assert info["version"] == 2 and info["promoted_at"] is not None
    assert sum(len(a) for a in answers.values()) > 40
    sha = {v: registry.get("churn", v).sha256 for v in (1, 2)}
    for n, seen in answers.items():
        assert [status for status, _ in seen] == [200] * len(seen), f"client {n}: a failed request"
        versions = [body["model_version"] for _, body in seen]
        for version, (_, body) in zip(versions, seen, strict=True):
            assert {p["model_version"] for p in body["predictions"]} == {version}  # no mixed answer
            assert {p["model_sha256"] for p in body["predictions"]} == {sha[version]}
            scores = np.array([p["score"] for p in body["predictions"]])
            assert np.abs(scores - expected[version]).max() <= 1e-12
        assert versions == sorted(versions), f"client {n} went back to an old model"
        assert versions[0] == 1 and versions[-1] == 2


def test_a_rollback_through_the_cli_is_served_within_the_reload(world, tmp_path, capsys):
    """`rollback` puts v1 back from a day on (a new audit entry) and the running service answers with
    it; a promotion puts v2 back the same way. The champion of a day before the move does not change."""
    from include import cli

    _, lake, registry = world
    rows = request_rows(lake, DAY)[:3]
    moved_on = "2025-03-20"  # after v2's first day (03-15), before the next version's (03-31)
    assert registry.champion("churn").version == 2
    with running_service(tmp_path / "service.log") as url, httpx.Client(base_url=url, headers=AUTH) as http:

        def served() -> int:
            return http.post("/v1/churn/score", json={"rows": rows}).json()["model_version"]

        assert served() == 2
        assert cli.main(["rollback", "churn", "--reason", "v2 misbehaves", "--ds", moved_on]) == 0
        assert "rollback" in capsys.readouterr().out
        wait_for(lambda: served() == 1)
        assert served() == 1 and registry.champion_as_of("churn", dt.date(2025, 3, 19)).version == 2
        promote = ["promote", "churn", "--version", "2", "--reason", "fixed upstream", "--ds", moved_on]
        assert cli.main(promote) == 0
        wait_for(lambda: served() == 2)
        assert served() == 2
    trail = registry.champion_history("churn")
    assert [(c.kind, c.version) for c in trail[-2:]] == [("rollback", 1), ("promote", 2)]
    assert trail[-1].actor.startswith("cli:") and trail[-2].reason == "v2 misbehaves"


def test_online_equals_batch_for_the_new_champion_too(world, monkeypatch):
    _, _, registry = world
    assert registry.champion("churn").family == "hist_gradient_boosting"  # after the swap above
    assert_online_equals_batch(world, "fast", monkeypatch)


def test_a_tampered_champion_is_not_loaded(world, tmp_path):
    platform, lake, registry = world
    training, _ = read_days(lake, "raw", "churn", TRAINING_DAYS[0], TRAINING_DAYS[-1])
    v3 = register_model(registry, lake, SPEC, training, DAY, "logistic_regression", {"C": 0.1}, "v3")
    key = lake.key_of(registry.get("churn", v3).artifact_uri)
    lake.put_bytes(key, lake.read_bytes(key) + b"tampered")
    champion = registry.champion("churn").version
    assert registry.promote("churn", v3, expected=champion).promoted

    service = ScoringService([SPEC], ChampionSource(platform, lake))
    with TestClient(create_app(service, TOKEN, ServingSettings())) as client:
        answer = client.post("/v1/churn/score", json={"rows": request_rows(lake, DAY)[:1]}, headers=AUTH)
    assert answer.status_code == 503
    detail = answer.json()["detail"]
    assert detail.startswith(f"churn: champion v{v3} not loaded: churn v{v3} (file://")
    assert "checksum mismatch" in detail


def test_no_champion_is_503_with_the_reason(tmp_path):
    platform = sa.create_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    upgrade(platform)
    service = ScoringService([SPEC], ChampionSource(platform, LocalStore(tmp_path / "lake")))
    with TestClient(create_app(service, TOKEN, ServingSettings())) as client:
        answer = client.get("/v1/churn/model", headers=AUTH)
        health = client.get("/health").json()
    assert answer.status_code == 503
    assert (
        "no champion: no churn model has passed the gate yet (train one: trigger churn_train)"
        in (answer.json()["detail"])
    )
    assert health["status"] == "degraded"
