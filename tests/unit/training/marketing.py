"""The churn spec as a marketing table would have it: a column `d`, the days since the customer was
last contacted, -1 for "never contacted" and null when unknown, with derived features in the
grammar a data scientist writes (`d >= 0`, `where(...)`), for the preprocessing, importance,
model-file and fast-path tests."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from include.usecases.spec import UseCase

DERIVED = {
    "contacted": "d >= 0",
    "recency": "where(d >= 0, d, 999)",
    "per_month": "where(tenure > 0, TotalCharges / tenure, 0)",
    "log_total": "log(TotalCharges)",
}


def with_contact_days(spec: UseCase, derived: Mapping[str, str] = DERIVED) -> UseCase:
    """`spec` with the nullable integer column `d` (from the first source), a numeric feature, and
    `derived` as its derived features."""
    raw = spec.model_dump()
    raw["columns"]["d"] = {"type": "integer", "min": -1, "nullable": True}
    raw["sources"][0]["columns"] = [*raw["sources"][0]["columns"], "d"]
    raw["features"]["numeric"] = [*raw["features"]["numeric"], "d"]
    raw["features"]["derived"] = dict(derived)
    return UseCase.model_validate(raw)


def contact_days(frame: pd.DataFrame, unknown: bool = True) -> pd.DataFrame:
    """`frame` with `d`: a third never contacted (-1), the rest 0 to 364 days, and (when `unknown`)
    one row in 40 null. Churners were contacted more recently, so `d` carries some signal."""
    n = np.arange(len(frame))
    days = (n * 37) % 365 // np.where(frame["Churn"].eq("Yes"), 3, 1)
    d = pd.Series(np.where(n % 3 == 0, -1, days), index=frame.index, dtype="Int64")
    if unknown:
        d[n % 40 == 7] = pd.NA
    return frame.assign(d=d)
