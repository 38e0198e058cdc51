"""The bench measures the product: its sharded paths call the scoring DAG's own stage functions."""

from __future__ import annotations

import include.scoring.task as scoring
from tools.bench import paths


def test_the_bench_scores_and_publishes_with_the_dags_own_functions():
    assert paths.score_shard is scoring.score_shard
    assert paths.publish is scoring.publish
    assert paths.resolve_model is scoring.resolve_model
