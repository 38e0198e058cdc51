from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from include.training.split import DATE_COLUMN, days_until_every_class, split_holdout, time_series_folds

AS_OF = dt.date(2025, 3, 31)


def daily(first: str, days: int, rows_per_day: int = 2) -> pd.DataFrame:
    dates = pd.date_range(first, periods=days, freq="D").repeat(rows_per_day)
    return pd.DataFrame({DATE_COLUMN: dates, "value": np.arange(len(dates))})


def test_the_holdout_is_the_newest_days_of_the_window(churn: pd.DataFrame) -> None:
    train, holdout = split_holdout(churn, DATE_COLUMN, AS_OF, window_days=60, holdout_days=14)
    assert train[DATE_COLUMN].min() == dt.date(2025, 1, 31)
    assert train[DATE_COLUMN].max() == dt.date(2025, 3, 17)
    assert (holdout[DATE_COLUMN].min(), holdout[DATE_COLUMN].max()) == (dt.date(2025, 3, 18), AS_OF)
    assert holdout[DATE_COLUMN].nunique() == 14 and train[DATE_COLUMN].nunique() == 46
    in_window = churn[DATE_COLUMN].between(dt.date(2025, 1, 31), AS_OF)
    assert len(train) + len(holdout) == in_window.sum()
    assert set(train["customerID"]).isdisjoint(holdout["customerID"])
    assert train.index.tolist() == list(range(len(train)))


@pytest.mark.parametrize("as_of", [AS_OF, "2025-03-31", pd.Timestamp("2025-03-31 18:30")])
def test_dates_and_timestamps_split_alike(churn: pd.DataFrame, as_of: object) -> None:
    expected = split_holdout(churn, DATE_COLUMN, AS_OF, 60, 14)
    stamped = churn.assign(**{DATE_COLUMN: pd.to_datetime(churn[DATE_COLUMN]) + pd.Timedelta(hours=7)})
    train, holdout = split_holdout(stamped, DATE_COLUMN, as_of, 60, 14)
    assert train["customerID"].tolist() == expected[0]["customerID"].tolist()
    assert holdout["customerID"].tolist() == expected[1]["customerID"].tolist()


def test_rows_come_out_in_date_order_even_from_a_shuffled_frame() -> None:
    frame = daily("2025-01-01", 30).sample(frac=1, random_state=0)
    train, holdout = split_holdout(frame, DATE_COLUMN, "2025-01-30", 20, 5)
    assert train[DATE_COLUMN].is_monotonic_increasing and holdout[DATE_COLUMN].is_monotonic_increasing
    assert len(train) == 2 * 15 and len(holdout) == 2 * 5


def test_an_empty_holdout_names_its_dates() -> None:
    frame = daily("2025-01-01", 20)
    with pytest.raises(ValueError, match=r"holdout part \(2025-01-25 to 2025-01-31\) has no rows"):
        split_holdout(frame, DATE_COLUMN, "2025-01-31", window_days=30, holdout_days=7)


def test_an_empty_training_part_names_its_dates() -> None:
    frame = daily("2025-01-25", 7)
    with pytest.raises(ValueError, match=r"training part \(2025-01-02 to 2025-01-24\) has no rows"):
        split_holdout(frame, DATE_COLUMN, "2025-01-31", window_days=30, holdout_days=7)


def test_a_missing_date_column_is_named() -> None:
    with pytest.raises(ValueError, match="no date column 'snapshot_date'"):
        split_holdout(daily("2025-01-01", 10), "snapshot_date", "2025-01-10", 8, 2)


def test_the_holdout_must_fit_inside_the_window() -> None:
    with pytest.raises(ValueError, match="holdout_days < window_days"):
        split_holdout(daily("2025-01-01", 10), DATE_COLUMN, "2025-01-10", 7, 7)


def test_folds_validate_on_later_whole_days(churn_split: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, _ = churn_split
    dates = pd.to_datetime(train[DATE_COLUMN])
    folds = time_series_folds(train[DATE_COLUMN], n_splits=5)
    assert len(folds) == 5
    for train_rows, valid_rows in folds:
        assert dates.iloc[train_rows].max() < dates.iloc[valid_rows].min()
        assert set(dates.iloc[train_rows]).isdisjoint(dates.iloc[valid_rows])
    # Expanding window: each fold trains on more days, and together the folds validate the tail.
    sizes = [len(train_rows) for train_rows, _ in folds]
    assert sizes == sorted(sizes)
    assert folds[-1][1].max() == len(train) - 1


def test_folds_map_back_to_positions_of_unsorted_dates() -> None:
    dates = pd.Series(pd.to_datetime(["2025-01-03", "2025-01-01", "2025-01-02", "2025-01-01", "2025-01-03"]))
    folds = time_series_folds(dates, n_splits=2)
    assert [(t.tolist(), v.tolist()) for t, v in folds] == [([1, 3], [2]), ([1, 2, 3], [0, 4])]


def test_folds_need_enough_distinct_days() -> None:
    with pytest.raises(ValueError, match="5 time-series folds need at least 6 distinct days, got 4"):
        time_series_folds(pd.date_range("2025-01-01", periods=4).repeat(10), n_splits=5)


def test_folds_refuse_missing_dates() -> None:
    with pytest.raises(ValueError, match="1 missing value"):
        time_series_folds([dt.date(2025, 1, 1), None, dt.date(2025, 1, 2), dt.date(2025, 1, 3)], n_splits=2)


def as_lists(folds: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple[list[int], list[int]]]:
    return [(train.tolist(), valid.tolist()) for train, valid in folds]


def test_a_class_first_seen_late_is_in_every_folds_training() -> None:
    dates = pd.Series(pd.date_range("2025-01-01", periods=30).repeat(3))
    labels = np.tile([0, 1, 0], 30)
    labels[dates >= pd.Timestamp("2025-01-12")] = np.tile([0, 1, 2], 19)  # class 2 from day 12 on
    covering = days_until_every_class(dates, labels)
    assert covering == 12
    assert as_lists(time_series_folds(dates, 5, first_train_days=1)) == as_lists(time_series_folds(dates, 5))
    folds = time_series_folds(dates, 5, first_train_days=covering)
    assert len(folds) == 5
    for train_rows, valid_rows in folds:
        assert set(labels[train_rows]) == {0, 1, 2}
        assert dates[train_rows].max() < dates[valid_rows].min()
    assert sum(len(valid) for _, valid in folds) == 3 * 15  # the 18 days after the first 12, in 5 parts of 3


def test_a_class_seen_only_at_the_end_leaves_the_default_folds() -> None:
    dates = pd.Series(pd.date_range("2025-01-01", periods=12))
    assert days_until_every_class(dates, np.array([0] * 6 + [1] * 5 + [2])) == 12
    assert as_lists(time_series_folds(dates, 3, first_train_days=12)) == as_lists(time_series_folds(dates, 3))


@settings(max_examples=50, deadline=None)
@given(
    offsets=st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=200),
    n_splits=st.integers(min_value=2, max_value=6),
    first_train_days=st.integers(min_value=1, max_value=40),
)
def test_folds_never_look_into_the_future(offsets: list[int], n_splits: int, first_train_days: int) -> None:
    dates = [dt.date(2025, 1, 1) + dt.timedelta(days=d) for d in offsets]
    if len(set(dates)) < n_splits + 1:
        with pytest.raises(ValueError):
            time_series_folds(dates, n_splits)
        return
    for train_rows, valid_rows in time_series_folds(dates, n_splits, first_train_days):
        assert len(train_rows) and len(valid_rows)
        assert max(dates[i] for i in train_rows) < min(dates[i] for i in valid_rows)
        assert {dates[i] for i in valid_rows}.isdisjoint(dates[i] for i in train_rows)
