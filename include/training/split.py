"""Time-aware splits: the training window and its holdout, and cross-validation folds by day.

The lake's partitions carry their day in a `ds` column; a training frame is the concatenation of the
window's daily partitions. No day is ever split between a training and a validation part.
"""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pandas as pd
from sklearn.model_selection import TimeSeriesSplit

logger = logging.getLogger(__name__)

DATE_COLUMN = "ds"


def _days(values: pd.Series | pd.Index | np.ndarray | list, name: str) -> pd.Series:
    """Each value as a midnight timestamp (its day)."""
    try:
        return pd.Series(pd.to_datetime(values, format="mixed")).dt.normalize()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: cannot read the values as dates: {exc}") from exc


def split_holdout(
    frame: pd.DataFrame,
    date_column: str,
    as_of: dt.date | str,
    window_days: int,
    holdout_days: int,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split the window of `window_days` days ending on `as_of` (inclusive) into train and holdout.

    The holdout is the newest `holdout_days` calendar days of the window, the training part the days
    before them. Rows outside the window are left out. Both parts are sorted by date (stably) and
    re-indexed from 0.

    Raises:
        ValueError: when the date column is missing, the sizes do not fit, or either part is empty
            (the message names its dates).
    """
    if date_column not in frame.columns:
        raise ValueError(f"the frame has no date column {date_column!r}")
    if not 0 < holdout_days < window_days:
        raise ValueError(f"need 0 < holdout_days < window_days, got {holdout_days} and {window_days}")
    end = pd.Timestamp(as_of).normalize()
    start = end - pd.Timedelta(days=window_days - 1)
    holdout_start = end - pd.Timedelta(days=holdout_days - 1)
    train_end = holdout_start - pd.Timedelta(days=1)
    days = _days(frame[date_column], date_column).to_numpy()
    order = np.argsort(days, kind="stable")
    days = days[order]
    train = frame.iloc[order[(days >= start) & (days <= train_end)]].reset_index(drop=True)
    holdout = frame.iloc[order[(days >= holdout_start) & (days <= end)]].reset_index(drop=True)
    for part, rows, first, last in (
        ("training", train, start, train_end),
        ("holdout", holdout, holdout_start, end),
    ):
        if rows.empty:
            raise ValueError(f"the {part} part ({first.date()} to {last.date()}) has no rows")
    logger.info(
        "Window %s to %s: %d training rows up to %s, %d holdout rows from %s; %d rows outside",
        start.date(),
        end.date(),
        len(train),
        train_end.date(),
        len(holdout),
        holdout_start.date(),
        len(frame) - len(train) - len(holdout),
    )
    return train, holdout


def time_series_folds(
    dates: pd.Series | pd.Index | np.ndarray | list, n_splits: int, first_train_days: int = 1
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Expanding-window folds over whole days, as positional row indices into `dates`.

    The distinct days are split with `TimeSeriesSplit`, and each fold's days are mapped back to rows,
    so every validation row is dated strictly after every training row of its fold. Every fold
    trains on at least the first `first_train_days` days (the validation parts then share the days
    after them), when that leaves a day for each fold's validation.

    Raises:
        ValueError: when there are fewer than `n_splits + 1` distinct days.
    """
    days = _days(dates, "dates")
    if days.isna().any():
        raise ValueError(f"dates: {int(days.isna().sum())} missing value(s)")
    unique = np.sort(days.unique())
    if len(unique) < n_splits + 1:
        raise ValueError(
            f"{n_splits} time-series folds need at least {n_splits + 1} distinct days, got {len(unique)}"
        )
    default_test_days = len(unique) // (n_splits + 1)
    test_days = (len(unique) - first_train_days) // n_splits
    if len(unique) - n_splits * default_test_days >= first_train_days or test_days < 1:
        test_days = default_test_days
    folds = []
    for train_days, valid_days in TimeSeriesSplit(n_splits=n_splits, test_size=test_days).split(unique):
        folds.append(
            (
                np.flatnonzero(days.isin(unique[train_days]).to_numpy()),
                np.flatnonzero(days.isin(unique[valid_days]).to_numpy()),
            )
        )
    return folds


def days_until_every_class(dates: pd.Series | np.ndarray, labels: np.ndarray) -> int:
    """How many of the distinct days (oldest first) it takes until every label seen has appeared."""
    days = _days(dates, "dates")
    first_seen = pd.Series(days.to_numpy()).groupby(np.asarray(labels)).min()
    unique = np.sort(days.unique())
    return int(np.searchsorted(unique, first_seen.max().to_datetime64(), side="left")) + 1
