"""Which outcome judges a prediction: the entity's earliest outcome observed on or after the day it
was scored (a later one belongs to a later state of the entity). Shared by the realised performance
(`include.outcomes`) and the gate's backtest (`include.training.backtest`)."""

from __future__ import annotations

import datetime as dt

import pandas as pd

OBSERVED_COLUMNS = ["entity_id", "observed_ds", "outcome"]


def earliest_outcomes(observed: pd.DataFrame, scored: dt.date) -> pd.DataFrame:
    """Per entity, its first outcome observed on or after `scored` (`entity_id`, `outcome`);
    `observed` holds `OBSERVED_COLUMNS`, up to the day the judging run sees."""
    later = observed[observed["observed_ds"] >= scored].sort_values(["observed_ds", "entity_id"])
    return later.drop_duplicates("entity_id", keep="first")[["entity_id", "outcome"]]
