"""`gate.fairness`: the protected attributes must be declared columns that make groups, named on error."""

from __future__ import annotations

import copy

import pytest
import yaml

from include.usecases.spec import SPEC_DIR, SpecError, load_spec


@pytest.fixture(scope="module")
def churn_dict() -> dict:
    return yaml.safe_load((SPEC_DIR / "churn.yaml").read_text())


def _load(tmp_path, churn_dict, fairness: dict):
    raw = copy.deepcopy(churn_dict)
    raw["gate"]["fairness"] = fairness
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_spec(path)


def test_declared_attributes_load_with_an_optional_max_gap(tmp_path, churn_dict):
    spec = _load(tmp_path, churn_dict, {"attributes": ["gender", "SeniorCitizen"]})
    assert spec.gate.fairness.attributes == ("gender", "SeniorCitizen")
    assert spec.gate.fairness.max_gap is None
    bounded = _load(tmp_path, churn_dict, {"attributes": ["gender"], "max_gap": 0.1})
    assert bounded.gate.fairness.max_gap == 0.1


@pytest.mark.parametrize(
    ("fairness", "expected"),
    [
        ({"attributes": ["sex"]}, "broken.yaml: gate.fairness.attributes: 'sex' is not in `columns`"),
        (
            {"attributes": ["MonthlyCharges"]},
            "broken.yaml: gate.fairness.attributes: 'MonthlyCharges' is a float column; an attribute is "
            "string, integer, boolean",
        ),
        (
            {"attributes": ["gender", "gender"]},
            "broken.yaml: gate.fairness.attributes: gender named more than once",
        ),
        ({"attributes": []}, "broken.yaml: gate.fairness.attributes: Tuple should have at least 1 item"),
        (
            {"attributes": ["gender"], "max_gap": 0},
            "broken.yaml: gate.fairness.max_gap: Input should be greater than 0",
        ),
    ],
)
def test_a_bad_attribute_or_max_gap_names_the_key(tmp_path, churn_dict, fairness, expected):
    with pytest.raises(SpecError) as caught:
        _load(tmp_path, churn_dict, fairness)
    assert str(caught.value).startswith(expected)
