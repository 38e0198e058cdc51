"""`make bench` end to end on a few rows against PostgreSQL: every path runs on the same rows.

No timing is asserted: on a shared machine the figures are noise at this size.
"""

from __future__ import annotations

import json

import pytest

from include.bench.run import LABELS, SHARDED, SHARDED_LABELS, main

pytestmark = pytest.mark.integration

ROWS = 2_000


def test_every_path_handles_the_same_rows_and_the_figures_land_as_documented(pg_url, tmp_path):
    out = tmp_path / "results.json"
    url = pg_url.render_as_string(hide_password=False)
    main(["--rows", str(ROWS), "--pg-url", url, "--out", str(out), "--shards", "4"])
    results = json.loads(out.read_text())

    assert set(results["scoring"]["raw_s"]) == {"read", "predict", "write"}
    assert set(results["ingest"]["raw_s"]) == {"read", "read_csv", "write"}
    for stage in LABELS:
        figures = results[stage]
        assert figures["rows"] == ROWS
        for name in ("project_s", "naive_s", "speedup_vs_naive", "ratio_vs_raw_sum", "peak_rss_mb"):
            assert figures[name] > 0, (stage, name)
        assert {name: path["rows"] for name, path in figures["paths"].items()} == dict.fromkeys(
            LABELS[stage], ROWS
        )
    written = {name: path.get("predictions") for name, path in results["scoring"]["paths"].items()}
    assert written == {
        "project": ROWS,
        "project_lake": ROWS,
        "naive": ROWS,
        "raw_read": None,
        "raw_predict": None,
        "raw_write": ROWS,
    }
    assert results["scoring"]["project_lake_s"] > 0

    sharded = results[SHARDED]
    assert (sharded["rows"], sharded["shards"]) == (ROWS, 4)
    assert {name: path["rows"] for name, path in sharded["paths"].items()} == dict.fromkeys(
        SHARDED_LABELS, ROWS
    )
    assert {name: path["predictions"] for name, path in sharded["paths"].items()} == dict.fromkeys(
        SHARDED_LABELS, ROWS
    )
    assert len(sharded["paths"]["k_shards"]["shard_seconds"]) == 4
    assert sum(sharded["paths"]["k_shards"]["shard_seconds"]) < sharded["k_shards_s"]
    for name in (
        "one_task_s",
        "k_shards_s",
        "peak_rss_mb_per_shard",
        "swap_s",
        "delete_copy_s",
        "swap_speedup",
    ):
        assert sharded[name] > 0, name
