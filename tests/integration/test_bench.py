"""`make bench` end to end on a few rows against PostgreSQL: every path runs on the same rows (marker
`bench`: `make bench` runs it first, the test suite does not).

No timing is asserted: on a shared machine the figures are noise at this size.
"""

from __future__ import annotations

import json

import pytest

from tools.bench.run import LABELS, SHARDED, SHARDED_LABELS, main

pytestmark = [pytest.mark.integration, pytest.mark.bench]

ROWS = 2_000


def test_every_path_handles_the_same_rows_and_the_figures_land_as_documented(pg_url, tmp_path):
    out = tmp_path / "results.json"
    url = pg_url.render_as_string(hide_password=False)
    main(["--rows", str(ROWS), "--pg-url", url, "--out", str(out), "--shards", "4", "--repeats", "2"])
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
        for path in figures["paths"].values():
            assert len(path["runs_s"]) == 2 and path["seconds"] == min(path["runs_s"])
    written = {name: path.get("predictions") for name, path in results["scoring"]["paths"].items()}
    assert written == {
        "project": ROWS,
        "naive": ROWS,
        "raw_read": None,
        "raw_predict": None,
        "raw_write": ROWS,
    }

    sharded = results[SHARDED]
    assert (sharded["rows"], sharded["shards"]) == (ROWS, 4)
    assert {name: path["rows"] for name, path in sharded["paths"].items()} == dict.fromkeys(
        SHARDED_LABELS, ROWS
    )
    assert {name: path.get("predictions") for name, path in sharded["paths"].items()} == {
        **dict.fromkeys(SHARDED_LABELS, ROWS),
        "raw_predict": None,
    }
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


def test_the_training_stage_trains_each_window_with_the_default_search(tmp_path):
    """`make bench STAGE=train` at two tiny sizes, the larger over a lowered trial cap; no database."""
    from include.training.estimators import sample_trials
    from include.usecases.spec import get_spec

    out = tmp_path / "results.json"
    out.write_text(json.dumps({"scoring": {"rows": 5}, "by_rows": {"5": {"scoring": {"rows": 5}}}}))
    sizes, cap = (1_500, 3_000), 2_000
    argv = ["--stage", "train", "--max-trial-rows", str(cap), "--out", str(out)]
    main([*argv, *(arg for rows in sizes for arg in ("--train-rows", str(rows)))])
    results = json.loads(out.read_text())

    assert results["scoring"] == {"rows": 5} and results["by_rows"] == {"5": {"scoring": {"rows": 5}}}
    training = results["training"]
    assert training["max_trial_rows"] == cap
    training_spec = get_spec("churn").training
    search = sample_trials(training_spec.estimators, training_spec.n_trials, training_spec.random_state)
    for rows in sizes:
        figures = training["sizes"][str(rows)]
        assert figures["rows"] == figures["train_rows"] + figures["holdout_rows"] == rows
        assert figures["trial_rows"] == min(figures["train_rows"], cap)
        assert list(figures["trials"]) == [t.trial_id for t in search]
        assert figures["best"]["trial_id"] in figures["trials"]
        assert 0.6 < figures["holdout_roc_auc"] <= figures["teacher_roc_auc"] + 0.05
        assert list(figures["stages_s"]) == ["split", "trials", "final_fit", "holdout", "importance"]
        assert figures["stages_s"]["trials"] > 0 and figures["top_feature"] in get_spec("churn").features.all
    assert training["sizes"]["3000"]["trial_rows"] == cap < training["sizes"]["3000"]["train_rows"]
    [(name, ratio)] = training["time_ratios"].items()
    assert name == "3000/1500" and ratio["rows"] == 2.0 and ratio["seconds"] > 0


def test_a_regression_use_case_is_scored_on_every_path_and_trained_beside_churn(pg_url, tmp_path, capsys):
    """`--use-case hotel_rates`: the scoring paths and the training stage on the worked example's rows,
    its figures under its own key, churn's left where they are."""
    from include.usecases.spec import load_spec
    from tools.examples.seed import example_spec

    out = tmp_path / "results.json"
    churn = {"scoring": {"rows": 5}, "by_rows": {"5": {"scoring": {"rows": 5}}}}
    out.write_text(json.dumps(churn))
    url = pg_url.render_as_string(hide_password=False)
    stages = ["--stage", "scoring", "--stage", "train", "--train-rows", "3000", "--max-trial-rows", "2000"]
    main(["--use-case", "hotel_rates", *stages, "--rows", str(ROWS), "--pg-url", url, "--out", str(out)])
    results = json.loads(out.read_text())
    printed = capsys.readouterr().out

    assert {key: results[key] for key in churn} == churn
    hotel = results["use_cases"]["hotel_rates"]
    scoring = hotel["scoring"]
    assert scoring["rows"] == ROWS and hotel["by_rows"][str(ROWS)]["scoring"] == scoring
    assert hotel["machine"]["family"] == "linear"
    assert {name: path["rows"] for name, path in scoring["paths"].items()} == dict.fromkeys(
        LABELS["scoring"], ROWS
    )
    written = {name: path.get("predictions") for name, path in scoring["paths"].items()}
    assert written == {
        "project": ROWS,
        "naive": ROWS,
        "raw_read": None,
        "raw_predict": None,
        "raw_write": ROWS,
    }
    for name in ("project_s", "naive_s", "speedup_vs_naive", "ratio_vs_raw_sum", "peak_rss_mb"):
        assert scoring[name] > 0, name

    figures = hotel["training"]["sizes"]["3000"]
    spec = load_spec(example_spec("hotel_rates"))
    assert figures["metric"] == spec.gate.primary == "rmse"
    assert figures["rows"] == figures["train_rows"] + figures["holdout_rows"] == 3000
    # Drawn labels: the teacher is the ceiling; what was learnt stays near it, far under the gate's.
    assert 0 < figures["teacher_rmse"] < figures["holdout_rmse"] + 1 < spec.gate.ceiling
    assert figures["top_feature"] in spec.features.all
    assert "scoring (hotel_rates), 2,000 rows" in printed and "hotel_rates spec" in printed
    assert "holdout rmse" in printed


@pytest.mark.parametrize("stage", ["ingest", SHARDED])
def test_an_example_use_case_refuses_the_stages_only_churn_has(stage, capsys):
    with pytest.raises(SystemExit):
        main(["--use-case", "hotel_rates", "--stage", stage])
    assert f"--stage {stage} measures churn only, not --use-case hotel_rates" in capsys.readouterr().err


def test_an_examples_ids_outgrow_its_pattern_only_as_far_as_a_million_rows_need():
    """Five digits number 100,000 bookings: the bench's spec lets the number run to six, and every real
    row (five digits) still passes the checks."""
    import pyarrow.compute as pc

    from tools.bench.data import bench_spec, real_rows, resample
    from tools.examples.seed import hotel_rows

    spec = bench_spec("hotel_rates", 1_000_000)
    pattern = spec.columns[spec.entity_id].pattern
    assert pattern == "^B[0-9]{5,6}$"
    assert bench_spec("hotel_rates", ROWS).columns[spec.entity_id].pattern == "^B[0-9]{5}$"
    real = real_rows(spec)
    assert len(real) == len(hotel_rows())
    ids = resample(real, spec, 1_000_000).column(spec.entity_id)
    assert pc.count_distinct(ids).as_py() == 1_000_000
    assert pc.all(pc.match_substring_regex(ids, pattern)).as_py()
