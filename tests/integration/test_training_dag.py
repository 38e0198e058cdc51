"""The training DAG's glue through `dag.test()`: runs against an existing champion, the promotion's
compare-and-swap, an unchanged retrain, and a task log an operator can read.

The world: 28 ingested days of the real Telco rows (SQLite platform and sources, folder lake) and a
deliberately weak champion (a one-split tree) trained as of the first week.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa

from include.ingest.pipeline import ingest_partition, read_sources
from include.io.lake import RAW_ZONE, read_days
from include.io.stores import LocalStore
from include.partition import Partition
from include.platform.schema import upgrade
from include.registry.registry import Registry
from include.training.gate import GateDecision
from include.usecases.spec import get_spec
from tests.conftest import dags_test_output, register_model, run_dag, task_states, use_platform
from tools.demo.seed import seed

pytestmark = pytest.mark.integration

SPEC = get_spec("churn")
FIRST = dt.date(2025, 3, 4)
DAYS = [FIRST + dt.timedelta(days=n) for n in range(28)]
AS_OF = DAYS[-1]
# One family, two trials: a real tuning run in seconds.
QUICK = {"estimators": ["logistic_regression"], "n_trials": 2, "window_days": 28}


@pytest.fixture
def world(airflow_db, tmp_path, monkeypatch):
    """Ingested days, a weak champion v1, and the connections a task run resolves (unique per test)."""
    platform = sa.create_engine(f"sqlite:///{tmp_path / 'platform.db'}")
    sources = sa.create_engine(f"sqlite:///{tmp_path / 'source.db'}")
    bucket, lake = LocalStore(tmp_path / "bucket"), LocalStore(tmp_path / "lake")
    seed(sources, bucket, SPEC)
    upgrade(platform)
    for day in DAYS:
        partition = Partition(day)
        raw = read_sources(SPEC, partition, lambda _: sources, lambda _: bucket)
        ingest_partition(SPEC, partition, raw=raw, lake=lake, platform=platform, run_id=f"ingest-{day}")
    first_week, _ = read_days(lake, RAW_ZONE, "churn", DAYS[0], DAYS[6])
    registry = Registry(platform)
    stump = {"n_estimators": 1, "max_depth": 1, "min_samples_leaf": 1, "max_features": 1.0}
    weak = register_model(registry, lake, SPEC, first_week, DAYS[6], "random_forest", stump, "weak")
    assert registry.promote("churn", weak, None).promoted

    use_platform(monkeypatch, platform, lake.root)
    yield registry, lake, first_week
    platform.dispose()
    sources.dispose()


def train(day: dt.date, **conf):
    run = run_dag("churn_train", day, {**QUICK, **conf})
    return run, task_states(run)


def test_a_rejected_run_then_a_promoted_one_against_the_existing_champion(world):
    registry, _, _ = world

    run, tasks = train(AS_OF, estimators=["dummy"])
    assert run.state == "success"
    assert (tasks["gate"], tasks["promote"]) == ("success", "skipped")
    [rejected] = [v for v in registry.versions("churn") if v.family == "dummy"]
    assert rejected.status == "rejected" and "floor" in rejected.status_reason
    assert registry.champion("churn").version == 1

    run, tasks = train(AS_OF)
    assert (run.state, tasks["promote"]) == ("success", "success")
    champion = registry.champion("churn")
    assert (champion.version, champion.family, champion.ds) == (3, "logistic_regression", AS_OF)
    decision = registry.decision("churn", 3)
    assert decision.passed and decision.champion_version == 1
    assert decision.candidate_metrics["roc_auc"] > decision.champion_metrics["roc_auc"]
    assert [(c.version, c.previous_version) for c in registry.champion_history("churn")] == [
        (1, None),
        (3, 1),
    ]
    assert registry.get("churn", 1).status == "retired"


def test_promote_swaps_only_from_the_champion_its_gate_judged(world):
    """A champion promoted between a candidate's gate and its promotion wins: the candidate, judged
    against the old champion, is not promoted over the new one."""
    from include.runs import RunFacts, Stores
    from include.training.task import Candidate, promote

    registry, lake, first_week = world
    _, tasks = train(AS_OF, min_improvement=1.0)  # judged against v1, and failed
    assert tasks["promote"] == "skipped"
    candidate = registry.versions("churn")[-1]
    # As if its gate had passed it against v1, and another run then promoted a newer model.
    judged = GateDecision(True, ("passed (test)",), candidate.metrics, {"roc_auc": 0.7})
    registry.record_decision(candidate, registry.get("churn", 1), judged)
    params = {"C": 1.0}
    interloper = register_model(
        registry, lake, SPEC, first_week, AS_OF, "logistic_regression", params, "other"
    )
    assert registry.promote("churn", interloper, 1).promoted

    run = RunFacts.of("churn", AS_OF, "promote")
    outcome = promote(run, Candidate.of(candidate, unchanged=False), Stores.from_settings())

    assert not outcome["promoted"]
    assert outcome["reason"] == f"not promoted: the champion changed from v1 to v{interloper} meanwhile"
    assert registry.champion("churn").version == interloper
    assert registry.get("churn", candidate.version).status == "rejected"


def test_a_retrain_on_unchanged_data_reuses_its_version(world, capsys):
    from include import cli

    registry, _, _ = world
    first, _ = train(AS_OF)
    versions = len(registry.versions("churn"))
    second, tasks = train(AS_OF)

    assert second.state == "success" and tasks["promote"] == "skipped"
    assert len(registry.versions("churn")) == versions
    runs = {r.run_id: r for r in registry.training_runs("churn")}
    assert (runs[first.run_id].outcome, runs[second.run_id].outcome) == ("registered", "unchanged")
    assert runs[first.run_id].version == runs[second.run_id].version
    capsys.readouterr()
    assert cli.main(["trainings", "churn"]) == 0
    assert "unchanged" in capsys.readouterr().out


def test_a_healthy_training_run_logs_no_warning_flood_and_no_error(world):
    """`airflow dags test` in a fresh process, as an operator runs it: its output is the task logs."""
    lines = dags_test_output("churn_train", AS_OF, QUICK)
    assert any("registered v2" in line for line in lines)
    assert any("churn: champion v1 -> v2" in line for line in lines)
    assert [line for line in lines if "DeprecatedImportWarning" in line] == []
    assert [line for line in lines if "[error" in line] == []


def test_the_cli_shows_a_trained_version_in_full_as_the_ui_and_the_service_do(world, capsys):
    """`models churn --version N`: family, parameters, metrics with the gate's bounds, the windows and
    rows, every trial with the chosen one recorded at registration, and the permutation importance
    stored at training, most important first; the UI's API and the scoring service's model route
    return the same detail."""
    from include import cli

    registry, lake, _ = world
    _, tasks = train(AS_OF)
    assert tasks["promote"] == "success"
    version = registry.champion("churn")
    capsys.readouterr()

    assert cli.main(["models", "churn", "--version", str(version.version), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["family"], shown["params"]) == (version.family, version.params)
    assert shown["window"] == [DAYS[0].isoformat(), AS_OF.isoformat()]
    assert shown["holdout"] == [
        (AS_OF - dt.timedelta(days=SPEC.training.holdout_days - 1)).isoformat(),
        AS_OF.isoformat(),
    ]
    train_part, holdout = shown["rows"]["train"], shown["rows"]["holdout"]
    assert holdout == version.curves["rows"] and train_part > holdout
    primary = {m["metric"]: m for m in shown["metrics"]}["roc_auc"]
    assert primary["lower"] < primary["value"] < primary["upper"]
    gain = {m["metric"]: m for m in shown["decision"]["metrics"]}["roc_auc"]
    assert gain["gain_lower"] < gain["gain"] < gain["gain_upper"]  # against v1
    trials = shown["trials"]
    assert [t["trial_id"] for t in trials] == ["logistic_regression-0", "logistic_regression-1"]
    assert [t["trial_id"] for t in trials if t["chosen"]] == [version.chosen_trial]
    assert version.chosen_trial in {
        t["trial"]["trial_id"] for t in version.trials if t["trial"]["params"] == version.params
    }
    assert all(t["cv_std"] > 0 for t in trials)
    importance = shown["importance"]
    assert (importance["metric"], importance["n_repeats"], importance["rows"]) == ("roc_auc", 5, holdout)
    features = [f["feature"] for f in importance["features"]]
    # Every feature, and the indicator of TotalCharges, blank for new customers in the window.
    assert sorted(features) == sorted([*SPEC.features.all, "TotalCharges_missing"])
    assert [f["feature"] for f in importance["features"] if f["indicator"]] == ["TotalCharges_missing"]
    means = [f["mean"] for f in importance["features"]]
    assert means == sorted(means, reverse=True) and means[0] > 0

    assert cli.main(["models", "churn", "--version", str(version.version)]) == 0
    text = capsys.readouterr().out
    assert f"churn v{version.version}: champion, logistic_regression, trained as of {AS_OF}" in text
    assert f"{train_part:,} rows for training" in text and f"{holdout:,} rows" in text
    assert "gate: passed against v1, 90% bounds" in text
    for trial in trials:
        assert f"{trial['cv_mean']:.4f} ± {trial['cv_std']:.4f}" in text
    lines = text.splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith("permutation importance")) + 2
    assert [line.split()[0] for line in lines[start : start + len(features)]] == features

    assert ui_api_detail(registry.engine, version.version) == shown
    assert served_detail(registry.engine, lake) == shown


def ui_api_detail(engine: sa.Engine, version: int) -> dict:
    """The version as the UI's JSON API returns it to a viewer."""
    from airflow.api_fastapi.app import init_auth_manager, purge_cached_app
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    from include.ui.app import create_app, platform_db

    app = create_app()
    app.dependency_overrides[platform_db] = lambda: engine
    token = init_auth_manager().generate_jwt(SimpleAuthManagerUser(username="viewer", role="viewer"))
    try:
        with TestClient(app) as client:
            answer = client.get(f"/api/use-cases/churn/versions/{version}", cookies={"_token": token})
    finally:
        purge_cached_app()
    assert answer.status_code == 200, answer.text
    return answer.json()


def served_detail(engine: sa.Engine, lake: LocalStore) -> dict:
    """The champion's detail as the scoring service's model route returns it."""
    from fastapi.testclient import TestClient

    from include.serving.app import create_app
    from include.serving.champion import ChampionSource
    from include.serving.service import ScoringService
    from include.serving.settings import ServingSettings

    service = ScoringService([SPEC], ChampionSource(engine, lake))
    with TestClient(create_app(service, "a-token", ServingSettings())) as client:
        answer = client.get("/v1/churn/model", headers={"Authorization": "Bearer a-token"})
    assert answer.status_code == 200, answer.text
    return answer.json()["detail"]


def test_an_unknown_version_names_the_use_case_and_the_known_versions(world, capsys):
    from include import cli

    capsys.readouterr()
    assert cli.main(["models", "churn", "--version", "7"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.strip() == "error: churn: no model version 7 (known versions: v1)"


def test_a_day_whose_ingest_record_is_withdrawn_is_not_read_and_is_named(world, capsys):
    """A failed rerun withdraws its day's ingest record but leaves the old partition in the lake:
    training reads only committed days, and its run record names the day it left out."""
    from include import cli
    from include.ingest.task import withdraw_ingest_run

    registry, lake, _ = world
    stale = DAYS[10]
    withdraw_ingest_run(registry.engine, "churn", stale)
    run, _ = train(AS_OF)
    assert run.state == "success"

    [record] = [r for r in registry.training_runs("churn") if r.run_id == run.run_id]
    coverage = record.window_coverage
    assert (coverage["withdrawn"], coverage["missing"]) == ([stale.isoformat()], [])
    assert coverage["read"] == [d.isoformat() for d in DAYS if d != stale]
    trusted, _ = read_days(lake, RAW_ZONE, "churn", DAYS[0], AS_OF, only=set(DAYS) - {stale})
    version = registry.get("churn", record.version)
    assert sum(version.row_counts.values()) == len(trusted)

    capsys.readouterr()
    assert cli.main(["trainings", "churn"]) == 0
    assert f"window {DAYS[0]}..{AS_OF.isoformat()[5:]}: 27 of 28 days, {stale.isoformat()[5:]} withdrawn" in (
        capsys.readouterr().out
    )


def test_a_run_whose_own_day_is_withdrawn_fails_naming_it(world):
    from include.ingest.task import withdraw_ingest_run

    registry, _, _ = world
    withdraw_ingest_run(registry.engine, "churn", AS_OF)
    run, tasks = train(AS_OF)
    assert run.state == "failed"
    assert tasks["plan"] == "failed"
