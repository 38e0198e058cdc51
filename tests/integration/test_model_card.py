"""A trained version's model card, through the training stages on a SQLite platform and a folder lake.

The world: 21 ingested days of the real Telco rows; the churn spec with two protected attributes.
The stages run as the DAG runs them (plan, trials, fit and register, gate), without Airflow.
"""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from include.ingest.pipeline import ingest_partition, read_sources
from include.io.lake import RAW_ZONE, card_key, read_days
from include.io.stores import LocalStore
from include.partition import Partition
from include.platform.schema import upgrade
from include.registry.model_card import write_card
from include.registry.read_models import version_detail
from include.runs import RunFacts, Stores
from include.training import task
from include.usecases.spec import Fairness, get_spec
from tools.demo.seed import seed

pytestmark = pytest.mark.integration

FILE_SPEC = get_spec("churn")
FIRST = dt.date(2025, 3, 11)
DAYS = [FIRST + dt.timedelta(days=n) for n in range(21)]
AS_OF = DAYS[-1]
QUICK = {"estimators": ["logistic_regression"], "n_trials": 2, "window_days": len(DAYS)}
FAIRNESS = Fairness(attributes=("gender", "SeniorCitizen"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """v1 trained and judged as of the last day (no champion), with its run's plan and stores."""
    root = tmp_path_factory.mktemp("card")
    platform = sa.create_engine(f"sqlite:///{root / 'platform.db'}")
    sources = sa.create_engine(f"sqlite:///{root / 'source.db'}")
    bucket, lake = LocalStore(root / "bucket"), LocalStore(root / "lake")
    seed(sources, bucket, FILE_SPEC)
    upgrade(platform)
    for day in DAYS:
        partition = Partition(day)
        raw = read_sources(FILE_SPEC, partition, lambda _: sources, lambda _: bucket)
        ingest_partition(FILE_SPEC, partition, raw=raw, lake=lake, platform=platform, run_id=f"ingest-{day}")
    spec = FILE_SPEC.with_run_params(QUICK)
    spec = spec.model_copy(update={"gate": spec.gate.model_copy(update={"fairness": FAIRNESS})})
    run, stores = RunFacts(spec, Partition(AS_OF), "train-card"), Stores(lake, platform)
    plan = task.plan_training(run, stores)
    results = [task.run_trial(run, plan, trial, stores) for trial in task.sample_trials(run)]
    candidate = task.fit_and_register(run, plan, results, stores)
    registered = lake.read_bytes(card_key("churn", candidate.version)).decode()
    task.gate(run, plan, candidate, stores, alert=lambda reasons, details: None)
    yield {"run": run, "stores": stores, "plan": plan, "candidate": candidate, "registered": registered}
    platform.dispose()
    sources.dispose()


def _card(trained) -> str:
    return trained["stores"].lake.read_bytes(card_key("churn", trained["candidate"].version)).decode()


def test_the_card_names_the_window_every_days_sha256_the_chosen_trial_the_metrics_and_the_decision(trained):
    stores, plan = trained["stores"], trained["plan"]
    version = stores.registry.get("churn", trained["candidate"].version)
    record = stores.registry.decision("churn", version.version)
    card = _card(trained)

    assert card.startswith("# churn v1: model card\n")
    assert f"data window {DAYS[0]} .. {AS_OF} ({version.row_counts['train']:,} train rows)" in card
    _, digests = read_days(stores.lake, RAW_ZONE, "churn", DAYS[0], AS_OF)
    assert plan.coverage.sha256 == digests and len(digests) == len(DAYS)
    for day, digest in digests.items():
        assert f"| {day} | `{digest}` |" in card
    assert f"- chosen trial `{version.chosen_trial}`" in card
    assert f"| `{version.chosen_trial}` (chosen) |" in card
    levels = record.evidence["levels"]
    bounds = f"[{levels['roc_auc']['lower']:.4f}, {levels['roc_auc']['upper']:.4f}]"
    assert f"| roc_auc | {version.metrics['roc_auc']:.4f} | {bounds} |" in card
    verdict = "passed" if record.passed else "rejected"
    assert f"{verdict} against no champion, as of {AS_OF} (run `train-card`):" in card
    for reason in record.reasons:
        assert f"- {reason}" in card
    assert f"- code version `{version.code_version}`" in card
    assert f"| scikit-learn | {version.library_versions['scikit-learn']} |" in card


def test_the_card_reports_each_protected_groups_figures_and_the_largest_gap(trained):
    card = _card(trained)
    assert "### gender" in card and "### SeniorCitizen" in card
    assert "| group | rows | selection_rate | true_positive_rate | false_positive_rate |" in card
    for group in ("| Female |", "| Male |", "| 0 |", "| 1 |"):
        assert group in card
    assert card.count("- largest selection_rate gap ") == 2


def test_registration_writes_the_card_before_the_gate_says_it_is_not_judged(trained):
    registered = trained["registered"]
    assert "## Gate decision\n\nNot judged yet." in registered
    assert "Measured on `gender`, `SeniorCitizen` when the gate judges this version." in registered


def test_writing_the_card_again_from_the_same_facts_gives_the_same_bytes(trained):
    run, stores, plan, candidate = (trained[k] for k in ("run", "stores", "plan", "candidate"))
    key = card_key("churn", candidate.version)
    before = stores.lake.read_bytes(key)

    task.gate(run, plan, candidate, stores, alert=lambda reasons, details: None)  # judged again
    assert stores.lake.read_bytes(key) == before

    write_card(stores.lake, stores.registry, run.spec, candidate.version)  # the decision keeps the figures
    assert stores.lake.read_bytes(key) == before


def test_the_version_detail_carries_the_card_from_the_registrys_facts(trained):
    stores, run = trained["stores"], trained["run"]
    detail = version_detail(stores.registry, run.spec, trained["candidate"].version)
    card = _card(trained)
    assert detail.card_key == "models/churn/cards/v1.md"
    assert detail.card == card  # the decision keeps the fairness figures: the page shows the stored card
    headings = [b.text[0][0] for b in detail.card_blocks if b.kind == "heading"]
    assert headings[:3] == ["churn v1: model card", "Intended use", "Training data"]
