"""The drift tests' real Telco rows: a reference from half of the customers, scored days from the rest."""

from __future__ import annotations

import datetime as dt
import zlib
from pathlib import Path

import pandas as pd
import pytest

from include.monitoring.counting import DriftCounter
from include.monitoring.reference import Reference, build_reference
from include.monitoring.statistics import FeatureDrift
from include.usecases.spec import Features, UseCase, get_spec

DATA = Path(__file__).resolve().parents[3] / "data" / "telco_customer_churn.csv"
DAY = dt.date(2025, 3, 1)


@pytest.fixture(scope="module")
def spec() -> UseCase:
    return get_spec("churn")


@pytest.fixture(scope="module")
def halves() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The real rows as text, split in two by a hash of the customer id: same distribution, no overlap."""
    frame = pd.read_csv(DATA, dtype=str, keep_default_na=False)
    frame["ds"] = DAY.isoformat()
    odd = frame["customerID"].map(lambda customer: zlib.crc32(customer.encode()) % 2 == 1)
    return frame[~odd].reset_index(drop=True), frame[odd].reset_index(drop=True)


@pytest.fixture(scope="module")
def reference(halves, spec) -> Reference:
    return build_reference(halves[0], spec)


def measure(reference: Reference, frame: pd.DataFrame, spec: UseCase) -> list[FeatureDrift]:
    """The day's drift, counted in one chunk."""
    counter = DriftCounter(reference, spec)
    counter.add(frame)
    return counter.drifts()


@pytest.fixture
def day(halves) -> pd.DataFrame:
    """The other half, as a scored day (a fresh copy per test)."""
    return halves[1].copy()


def by_feature(drifts: list[FeatureDrift]) -> dict[str, FeatureDrift]:
    return {drift.feature: drift for drift in drifts}


def only(spec: UseCase, **features: tuple[str, ...]) -> UseCase:
    """The churn spec monitoring just the given features, so a test frame needs only those columns."""
    return spec.model_copy(update={"features": Features(**features)})
