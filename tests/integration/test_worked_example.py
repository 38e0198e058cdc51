"""The worked example of `docs/adding-a-use-case.md`, run as written: its spec (a file name other than its
`name`, a 0/1 integer label written `positive: 1`, one SQL source, a date feature, `true`/`false`
booleans) and its seeding command, then ingest → train → score through `dag.test()`."""

from __future__ import annotations

import datetime as dt
import json
import re
import shlex
import subprocess
import sys

import pytest
import sqlalchemy as sa

from include.ingest.pipeline import ingest_partition, read_sources
from include.io.stores import LocalStore
from include.partition import Partition
from include.platform.schema import upgrade
from include.platform.tables import predictions
from include.registry.registry import Registry
from include.usecases.spec import get_spec
from tests.conftest import REPO, connection_of, run_dag, task_states

pytestmark = pytest.mark.integration

FIRST, LAST = dt.date(2025, 3, 1), dt.date(2025, 3, 28)


PAGE = "docs/adding-a-use-case.md"


def doc_block(page: str, marker: str) -> str:
    """The fenced block that follows `<!-- marker -->` in the page (a path from the repository root)."""
    text = (REPO / page).read_text()
    found = re.search(rf"<!-- {marker} -->\n```\w+\n(.*?)```", text, re.S)
    assert found, f"{page} has no block marked {marker}"
    return found.group(1)


@pytest.fixture
def example(airflow_db, tmp_path, monkeypatch):
    """The page's spec in a spec folder, its source seeded by the page's command, the days ingested."""
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "subs.yaml").write_text(doc_block(PAGE, "worked-example-spec"))
    commands = doc_block(PAGE, "worked-example-commands").splitlines()
    [export] = [line for line in commands if line.startswith("export AIRFLOW_CONN_SUBSCRIPTIONS_DB=")]
    connection = json.loads(shlex.split(export.split("=", 1)[1])[0])
    connection["host"] = str(tmp_path / "subscriptions.db")  # the page's path is under .demo/
    monkeypatch.setenv("AIRFLOW_CONN_SUBSCRIPTIONS_DB", json.dumps(connection))
    [seed] = [line for line in commands if line.startswith("python -m tools.demo.subscriptions")]
    subprocess.run([sys.executable, *shlex.split(seed)[1:]], check=True, cwd=REPO, capture_output=True)

    platform = sa.create_engine(f"sqlite:///{tmp_path / 'platform.db'}")
    upgrade(platform)
    lake = tmp_path / "lake"
    monkeypatch.setenv("PLATFORM_SPEC_DIR", str(specs))
    monkeypatch.setenv("AIRFLOW_CONN_PLATFORM_DB", connection_of(platform))
    monkeypatch.setenv(
        "AIRFLOW_CONN_PLATFORM_LAKE", json.dumps({"conn_type": "fs", "extra": {"path": str(lake)}})
    )
    from include.io.connections import engine_for

    engine_for.cache_clear()
    spec = get_spec("subscriptions", specs)
    source = engine_for("subscriptions_db")
    for offset in range((LAST - FIRST).days):  # every day but the last, which the DAG ingests
        partition = Partition(FIRST + dt.timedelta(days=offset))
        raw = read_sources(spec, partition, lambda _: source, None)
        ingest_partition(spec, partition, raw=raw, lake=LocalStore(lake), platform=platform, run_id="seed")
    yield spec, platform
    engine_for.cache_clear()
    platform.dispose()


def test_the_worked_example_runs_ingest_train_and_score(example, capsys):
    spec, platform = example
    assert (spec.name, spec.label.positive, [s.kind for s in spec.sources]) == ("subscriptions", 1, ["sql"])

    ingest = run_dag("subscriptions_ingest", LAST)
    assert ingest.state == "success"
    train = run_dag("subscriptions_train", LAST)
    assert train.state == "success" and task_states(train)["promote"] == "success"
    champion = Registry(platform).champion("subscriptions")
    assert champion.ds == LAST and champion.metrics["roc_auc"] >= spec.gate.floor
    score = run_dag("subscriptions_score", LAST)
    assert score.state == "success"

    with platform.connect() as conn:
        scored = conn.execute(
            sa.select(sa.func.count()).where(
                predictions.c.use_case == "subscriptions", predictions.c.ds == LAST
            )
        ).scalar()
    assert scored == 150  # every account of the day (the seeding command's default)
    from include import cli

    capsys.readouterr()
    assert cli.main(["models", "subscriptions"]) == 0
    assert "champion" in capsys.readouterr().out
