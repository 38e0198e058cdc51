"""The training reference on the real Telco rows: its buckets, shares, JSON form and refusals."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from include.monitoring.reference import NULL, OTHER, Reference, build_reference
from tests.unit.monitoring.conftest import measure, only


def test_reference_covers_every_feature_with_shares_summing_to_one(reference, halves, spec):
    assert reference.rows == len(halves[0])
    assert [f.name for f in reference.features] == [
        *spec.features.numeric,
        *spec.features.categorical,
        *spec.features.boolean,
    ]
    for feature in reference.features:
        assert len(feature.buckets) == len(feature.shares)
        assert feature.buckets[-1] == NULL
        assert math.fsum(feature.shares) == pytest.approx(1.0)
        if feature.kind == "numeric":
            assert feature.edges[0] == -math.inf and feature.edges[-1] == math.inf
            assert np.all(np.diff(feature.edges) > 0)
            assert len(feature.edges) == len(feature.buckets)  # one bin per pair of edges, then nulls
            assert len(feature.edges) - 1 <= 10
        else:
            assert feature.buckets[-2] == OTHER


def test_blank_total_charges_are_counted_as_nulls(reference, halves):
    blanks = (halves[0]["TotalCharges"].str.strip() == "").sum()
    assert blanks > 0
    total = reference.feature("TotalCharges")

    assert total.shares[-1] == blanks / reference.rows


def test_typed_and_text_frames_give_the_same_reference(halves, spec, reference):
    typed = halves[0].copy()
    for name in spec.features.numeric:
        typed[name] = pd.to_numeric(typed[name].str.strip().replace("", None))
    typed["SeniorCitizen"] = typed["SeniorCitizen"].astype("Int64")

    assert build_reference(typed, spec) == reference


def test_rare_categories_merge_into_other_but_rare_boolean_values_stay(day, spec):
    day.loc[:19, "Contract"] = "Three year"
    day.loc[:9, "Partner"] = "Maybe"
    reference = build_reference(day, only(spec, categorical=("Contract",), boolean=("Partner",)))

    contract, partner = reference.features
    assert "Three year" not in contract.buckets
    assert contract.shares[contract.buckets.index(OTHER)] == 20 / len(day)
    assert partner.shares[partner.buckets.index("Maybe")] == 10 / len(day)
    assert partner.shares[partner.buckets.index(OTHER)] == 0


def test_a_constant_feature_has_one_bin_up_to_its_value(spec):
    frame = pd.DataFrame({"tenure": [5.0] * 50})
    reference = build_reference(frame, only(spec, numeric=("tenure",)))

    (tenure,) = reference.features
    assert tenure.edges == (-math.inf, 5.0, math.inf)
    assert tenure.buckets == ("(-inf, 5]", "(5, inf]", NULL)
    assert tenure.shares == (1.0, 0.0, 0.0)


def test_reference_round_trips_through_strict_json(reference, day, spec):
    text = json.dumps(reference.to_dict(), allow_nan=False)
    loaded = Reference.from_dict(json.loads(text))

    assert loaded == reference
    assert measure(loaded, day, spec) == measure(reference, day, spec)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda frame: frame.drop(columns=["Contract"]), "missing from the frame: ['Contract']"),
        (lambda frame: frame.iloc[:0], "no rows"),
    ],
)
def test_build_reference_refuses_bad_input(halves, spec, change, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        build_reference(change(halves[0]), spec)


def test_build_reference_needs_two_bins(halves, spec):
    with pytest.raises(ValueError, match="bins must be at least 2"):
        build_reference(halves[0], spec, bins=1)
