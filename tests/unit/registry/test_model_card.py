"""The model card from stored facts: its sections, its bytes for the same facts, its blocks for the page."""

from __future__ import annotations

import dataclasses
import datetime as dt

from include.registry.model_card import card_blocks, model_card
from include.registry.registry import GateRecord, ModelVersion
from include.usecases.spec import Fairness, get_spec

DS = dt.date(2025, 3, 31)
SPEC = get_spec("churn")
TRIAL = {"trial_id": "logistic_regression-1", "family": "logistic_regression", "params": {"C": 0.05}}
VERSION = ModelVersion(
    use_case="churn",
    run_id="scheduled__2025-03-31",
    ds=DS,
    window_start=dt.date(2025, 3, 30),
    window_end=DS,
    holdout_start=DS,
    holdout_end=DS,
    family="logistic_regression",
    params={"C": 0.05},
    threshold=0.6705,
    metrics={"roc_auc": 0.864, "accuracy": 0.8115},
    cv_metrics={"roc_auc": 0.8253},
    trials=[
        {
            "trial": {**TRIAL, "trial_id": "logistic_regression-0"},
            "primary": "roc_auc",
            "primary_mean": 0.82,
            "primary_std": 0.05,
        },
        {"trial": TRIAL, "primary": "roc_auc", "primary_mean": 0.8253, "primary_std": 0.0507},
    ],
    reference=None,
    library_versions={"scikit-learn": "1.9.1", "python": "3.11.9"},
    code_version="src-abc",
    artifact_uri="file:///lake/models/churn/sha256=ff.skops",
    sha256="f" * 64,
    fingerprint="e" * 64,
    importance={
        "metric": "roc_auc",
        "n_repeats": 5,
        "rows": 1077,
        "features": [{"feature": "tenure", "derived": False, "mean": 0.0627, "std": 0.0067}],
    },
    row_counts={"train": 1088, "holdout": 1077},
    chosen_trial="logistic_regression-1",
    version=2,
)
COVERAGE = {
    "first": "2025-03-30",
    "last": "2025-03-31",
    "read": ["2025-03-30", "2025-03-31"],
    "withdrawn": [],
    "missing": [],
    "sha256": {"2025-03-31": "b" * 64, "2025-03-30": "a" * 64},
}
RECORD = GateRecord(
    use_case="churn",
    candidate_version=2,
    champion_version=1,
    ds=DS,
    run_id="scheduled__2025-03-31",
    passed=True,
    reasons=["roc_auc gain +0.1720 [+0.1559, +0.1881]: 90% bound +0.1559 >= min_improvement 0.0050"],
    candidate_metrics=VERSION.metrics,
    champion_metrics={"roc_auc": 0.692, "accuracy": 0.66},
    confidence=0.9,
    evidence={
        "levels": {
            "roc_auc": {
                "metric": "roc_auc",
                "estimate": 0.864,
                "lower": 0.8498,
                "upper": 0.8773,
                "confidence": 0.9,
            }
        },
        "slices": [
            {
                "column": "Contract",
                "value": "One year",
                "rows": 240,
                "estimate": 0.01,
                "lower": -0.02,
                "upper": 0.04,
            }
        ],
    },
    decided_at=dt.datetime(2026, 12, 7, 10, 0),
)
FAIRNESS = [
    {
        "attribute": "gender",
        "min_rows": 100,
        "groups": [
            {
                "value": "Female",
                "rows": 540,
                "selection_rate": 0.3,
                "true_positive_rate": 0.8,
                "false_positive_rate": 0.2,
            },
            {
                "value": "Male",
                "rows": 537,
                "selection_rate": 0.25,
                "true_positive_rate": 0.7,
                "false_positive_rate": None,
            },
        ],
        "gaps": [
            {
                "high": "Female",
                "low": "Male",
                "high_value": 0.3,
                "low_value": 0.25,
                "metric": "selection_rate",
                "estimate": 0.05,
                "lower": 0.01,
                "upper": 0.09,
                "confidence": 0.9,
            }
        ],
    }
]


def test_the_card_states_every_section_from_the_facts():
    spec = SPEC.model_copy(
        update={
            "gate": SPEC.gate.model_copy(update={"fairness": Fairness(attributes=("gender",), max_gap=0.1)})
        }
    )
    card = model_card(spec, VERSION, RECORD, COVERAGE, FAIRNESS)

    assert SPEC.description in card and "- owner: ml-platform" in card
    assert '- task: binary: the probability that `Churn` is "Yes", predicted positive from 0.6705' in card
    assert "data window 2025-03-30 .. 2025-03-31 (1,088 train rows)" in card
    assert "- days read: 2 of 2\n" in card
    assert card.index(f"| 2025-03-30 | `{'a' * 64}` |") < card.index(f"| 2025-03-31 | `{'b' * 64}` |")
    assert "- derived: " not in card and "- numeric: `tenure`, `MonthlyCharges`, `TotalCharges`" in card
    assert "- chosen trial `logistic_regression-1` (cross-validated roc_auc 0.8253 ± 0.0507)" in card
    assert (
        '| `logistic_regression-1` (chosen) | logistic_regression | `{"C": 0.05}` | 0.8253 | 0.0507 |' in card
    )
    assert "| roc_auc | 0.8640 | [0.8498, 0.8773] |" in card and "| accuracy | 0.8115 | – |" in card
    assert "| Contract = One year | 240 | +0.0100 | [-0.0200, +0.0400] |" in card
    assert "| Male | 537 | 0.2500 | 0.7000 | – |" in card
    assert (
        "- largest selection_rate gap 0.0500 [0.0100, 0.0900]: Female (0.3000) against Male (0.2500)" in card
    )
    assert "The gate fails a gap whose lower bound exceeds `max_gap` 0.1000." in card
    assert "| `tenure` | 0.0627 | 0.0067 |" in card
    assert "passed against champion v1, as of 2025-03-31 (run `scheduled__2025-03-31`):" in card
    assert f"- {RECORD.reasons[0]}" in card
    assert "| python | 3.11.9 |\n| scikit-learn | 1.9.1 |" in card
    assert "2026-12-07" not in card  # the decision's wall-clock time is not a fact of the card


def test_the_same_facts_give_the_same_bytes_and_a_new_decision_changes_them():
    card = model_card(SPEC, VERSION, RECORD, COVERAGE, None)
    later = dataclasses.replace(RECORD, decided_at=dt.datetime(2027, 1, 1))
    assert model_card(SPEC, VERSION, later, COVERAGE, None) == card
    rejected = dataclasses.replace(RECORD, passed=False, reasons=["roc_auc gain: a tie does not promote"])
    assert model_card(SPEC, VERSION, rejected, COVERAGE, None) != card


def test_before_the_gate_and_without_coverage_the_card_says_what_is_missing():
    card = model_card(SPEC, VERSION, None, None, None)
    assert "The window's partition checksums were not recorded for this version." in card
    assert "Bounds come with the gate's decision: not judged yet." in card
    assert "## Gate decision\n\nNot judged yet." in card
    assert "Measured on `gender`, `SeniorCitizen` when the gate judges this version." in card


def test_the_blocks_keep_headings_lists_tables_and_code_stretches():
    blocks = card_blocks(model_card(SPEC, VERSION, RECORD, COVERAGE, FAIRNESS))
    headings = [(b.level, b.text) for b in blocks if b.kind == "heading"]
    assert headings[0] == (1, (("churn v2: model card", False),))
    assert [text[0][0] for _, text in headings[1:]] == [
        "Intended use",
        "Training data",
        "Features",
        "Model and search",
        "Holdout metrics",
        "Slices",
        "Fairness",
        "gender",
        "Permutation importance",
        "Gate decision",
        "Code and libraries",
    ]
    days = next(b for b in blocks if b.kind == "table" and b.header[0] == (("day", False),))
    assert days.rows[0] == ((("2025-03-30", False),), (("a" * 64, True),))
    assert card_blocks("| a \\| b | c |\n|---|---|\n| x | `y` |")[0].rows == (
        (((("x", False),)), (("y", True),)),
    )
    assert card_blocks("| a \\| b | c |\n|---|---|")[0].header[0] == (("a | b", False),)
