"""Shards of a day: how many, the row-group split and id ranges, and tallies that merge into exactly one
pass's counts."""

from __future__ import annotations

import json
import math
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from include.scoring.score import SCORE_UNITS, ShardCosts, Tally, plan_day, shard_count, split_row_groups


@given(
    st.lists(st.integers(min_value=0, max_value=1_000), min_size=1, max_size=60),
    st.integers(min_value=1, max_value=5_000),
)
def test_shards_are_contiguous_non_empty_ranges_covering_every_row_group(group_rows, shard_rows):
    ranges = split_row_groups(group_rows, shard_rows)

    assert ranges[0][0] == 0 and ranges[-1][1] == len(group_rows)
    assert all(first < end for first, end in ranges)
    assert all(end == first for (_, end), (first, _) in pairwise(ranges))
    wanted = max(1, math.ceil(sum(group_rows) / shard_rows))
    assert len(ranges) == min(wanted, len(group_rows))


def test_even_row_groups_split_into_balanced_shards():
    assert split_row_groups([100] * 8, 200) == [(0, 2), (2, 4), (4, 6), (6, 8)]
    assert split_row_groups([100] * 8, 10_000) == [(0, 8)]
    # Row groups coarser than shard_rows: one shard per row group, never an empty one.
    assert split_row_groups([100] * 3, 10) == [(0, 1), (1, 2), (2, 3)]
    sizes = [100_000 * (end - first) for first, end in split_row_groups([100_000] * 50, 250_000)]
    assert len(sizes) == 20 and set(sizes) <= {200_000, 300_000} and sum(sizes) == 5_000_000


def test_a_day_gets_a_shard_per_worker_and_more_rounds_only_while_start_up_stays_small():
    costs = ShardCosts(startup_s=2.0, rows_per_s=150_000)  # a shard is worth it from 2.7 M rows
    assert shard_count(5_000_000, 50, 2, costs, 250_000) == 2
    assert shard_count(5_000_000, 50, 1, costs, 250_000) == 1
    assert shard_count(50_000_000, 500, 2, costs, 250_000) == 18  # 9 rounds of 2.78 M rows
    assert shard_count(50_000_000, 500, 3, costs, 250_000) == 18
    # Start-up that costs less: smaller shards; none under the spec's rows, nor beyond the row groups.
    cheap = ShardCosts(startup_s=0.01, rows_per_s=150_000)
    assert shard_count(5_000_000, 50, 2, cheap, 250_000) == 20
    assert shard_count(5_000_000, 8, 2, cheap, 250_000) == 8
    assert shard_count(80, 1, 4, costs, 250_000) == 1  # a demo day


def test_shards_of_a_day_sorted_by_id_are_ranges_of_ids_and_of_an_unsorted_day_one():
    rows, starts = [100, 100, 100, 100], ["A", "F", "K", "P"]
    shards = plan_day(rows, starts, 2, lambda index, count: f"shard-{index}-of-{count}")
    assert [(s.first_group, s.end_group, s.lower, s.upper, s.key) for s in shards] == [
        (0, 2, None, "K", "shard-0-of-2"),
        (2, 4, "K", None, "shard-1-of-2"),
    ]
    [whole] = plan_day(rows, None, 2, lambda index, count: f"shard-{index}-of-{count}")
    assert (whole.first_group, whole.end_group, whole.lower, whole.upper) == (0, 4, None, None)


def test_a_partition_has_ranges_of_ids_only_when_its_row_groups_are_sorted_by_id(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from include.io.stores import LocalStore
    from include.scoring.score import partition_row_groups

    ids = [f"{i:04d}" for i in range(40)]
    for name, order in (("sorted", ids), ("shuffled", ids[10:] + ids[:10])):
        pq.write_table(
            pa.table({"id": order, "x": range(40)}), tmp_path / f"{name}.parquet", row_group_size=10
        )
    lake = LocalStore(tmp_path)

    assert partition_row_groups(lake, "sorted.parquet", ["id", "x"]) == (
        [10] * 4,
        ["0000", "0010", "0020", "0030"],
    )
    assert partition_row_groups(lake, "shuffled.parquet", ["id", "x"]) == ([10] * 4, None)


def tally_of(scores: np.ndarray, rejected: dict[str, int]) -> Tally:
    tally = Tally(rows_in=len(scores) + sum(rejected.values()))
    tally.rejected.update(rejected)
    tally.add_scores(scores, (scores >= 0.4).astype("int16"))
    return tally


def test_shard_tallies_through_json_merge_into_the_one_pass_tally():
    scores = np.random.default_rng(7).random(10_000)
    whole = tally_of(scores, {"customerID is missing": 3})
    merged = Tally()
    for part, rejected in (
        (scores[:1], {}),
        (scores[1:4_097], {"customerID is missing": 3}),
        (scores[4_097:], {}),
    ):
        merged.merge(Tally.from_dict(json.loads(json.dumps(tally_of(part, rejected).to_dict()))))

    assert merged.to_dict() == whole.to_dict()
    assert merged.figures() == whole.figures()
    figures = whole.figures()
    assert figures["rows_in"] == figures["rows_scored"] + figures["rows_rejected"] == 10_003
    assert figures["score_mean"] == pytest.approx(scores.mean(), rel=1e-14)
    assert figures["positive_rate"] == np.mean(scores >= 0.4)
    assert sum(figures["score_histogram"]) == 10_000


def test_the_score_sum_stays_exact_beyond_64_bits():
    ones = np.ones(5_000)
    tally = Tally()
    for _ in range(1_000):  # 5 M scores of 1.0: 5e6 * 2**52 units > 2**63
        tally.add_scores(ones, np.ones(5_000, "int16"))
    assert tally.score_units == 5_000_000 * SCORE_UNITS
    assert tally.figures()["score_mean"] == 1.0
