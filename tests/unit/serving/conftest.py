"""Fitted churn pipelines on the real Telco rows, and the same rows as a request sends them."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from include.registry.model_files import FittedModel, VersionModel
from include.registry.registry import ModelVersion
from include.training.estimators import Trial, build_model
from include.training.preprocess import split_xy
from include.usecases.spec import UseCase
from tests.conftest import new_version

DATA = Path(__file__).resolve().parents[3] / "data" / "telco_customer_churn.csv"
FAMILIES = {
    "logistic_regression": {"C": 1.0},
    "hist_gradient_boosting": {"max_iter": 30, "max_leaf_nodes": 15},
    "random_forest": {"n_estimators": 20, "max_depth": 6},
    "dummy": {},
}


@pytest.fixture(scope="session")
def telco() -> pd.DataFrame:
    return pd.read_csv(DATA)


@pytest.fixture(scope="session")
def pipelines(spec: UseCase, telco: pd.DataFrame) -> dict[str, Pipeline]:
    X, y = split_xy(telco.head(1500), spec)
    return {family: build_model(spec, family, params).fit(X, y) for family, params in FAMILIES.items()}


def version_model(pipeline: Pipeline, version: int = 1, sha256: str = "0" * 64) -> VersionModel:
    """A registered version (a registry entry, no file behind it) holding `pipeline`."""
    base = new_version(f"run-{version}", dt.date(2025, 3, version))
    entry = ModelVersion(**{**asdict(base), "sha256": sha256}, version=version, status="champion")
    fitted = FittedModel(pipeline, threshold=entry.threshold, trial=Trial(f"{version}", "test", {}))
    return VersionModel(entry, fitted)


def as_request_rows(frame: pd.DataFrame, spec: UseCase) -> list[dict[str, Any]]:
    """Telco rows as a client sends them: numbers as numbers, a blank TotalCharges as null."""
    rows = []
    for record in frame[list(spec.features.all)].to_dict("records"):
        total = pd.to_numeric(record["TotalCharges"], errors="coerce")
        record["TotalCharges"] = None if math.isnan(total) else float(total)
        record["MonthlyCharges"] = float(record["MonthlyCharges"])
        record["tenure"], record["SeniorCitizen"] = int(record["tenure"]), int(record["SeniorCitizen"])
        rows.append(record)
    return rows


@pytest.fixture(scope="session")
def request_rows(spec: UseCase, telco: pd.DataFrame) -> list[dict[str, Any]]:
    """1,000 real rows (including the blank TotalCharges ones) as request rows."""
    blanks = telco[telco["TotalCharges"].str.strip() == ""]
    return as_request_rows(pd.concat([blanks, telco.tail(1000 - len(blanks))]), spec)
