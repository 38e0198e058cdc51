"""Frames from the real Telco churn data, with a `ds` column as the lake's daily partitions have."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from include.training.split import DATE_COLUMN, split_holdout
from include.usecases.spec import UseCase, get_spec

DATA = Path(__file__).resolve().parents[2] / "data" / "telco_customer_churn.csv"
FIRST_DAY = dt.date(2025, 1, 1)
DAYS = 90
AS_OF = FIRST_DAY + dt.timedelta(days=DAYS - 1)  # 2025-03-31, the last day with rows


@pytest.fixture(scope="session")
def spec() -> UseCase:
    return get_spec("churn")


@pytest.fixture(scope="session")
def _churn() -> pd.DataFrame:
    frame = pd.read_csv(DATA)
    # Row i lands on day i mod 90: deterministic, and every day gets a similar mix of customers.
    frame[DATE_COLUMN] = [FIRST_DAY + dt.timedelta(days=i % DAYS) for i in range(len(frame))]
    return frame


@pytest.fixture
def churn(_churn: pd.DataFrame) -> pd.DataFrame:
    """The 7,043 real rows spread over 90 days from 2025-01-01 (a fresh copy per test)."""
    return _churn.copy()


@pytest.fixture(scope="session")
def churn_split(_churn: pd.DataFrame, spec: UseCase) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training part and holdout of the spec's window ending on 2025-03-31 (do not modify)."""
    return split_holdout(_churn, DATE_COLUMN, AS_OF, spec.training.window_days, spec.training.holdout_days)
