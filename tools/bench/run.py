"""Measure the scoring and ingest paths on N generated rows, and training on big windows:
`python -m tools.bench [--rows N] [--use-case NAME] [--stage scoring|ingest|train ...]`.

`--use-case` (default churn, binary) picks the rows and the model: `hotel_rates` (regression) and
`hpc_jobs` (multiclass) are the worked examples (`tools/examples`), measured on the scoring and
training stages (ingest and sharded scoring are churn's only).

Scoring and ingest, in a fresh PostgreSQL database (created, then dropped), on the same data: the
project's path end to end, the naive pandas path, and each raw bulk stage alone, each in its own
process so that every path's peak RSS is its own, `--repeats` times taking turns (the median run
counts: these are shared 2-core machines). `sharded_scoring`: the day as one task (one shard
and its publish) and as K shards scored one after another, each in its own process, then their
publish; the day's replacement in PostgreSQL, the partition swap against DELETE + COPY into a
plain table; the raw predict and COPY of the day; with `--celery-workers 1 2`, the same day through
the real scoring DAG on 1 and on 2 Celery workers, beside one process (tools/scaleout/bench.py).
Training (`tools.bench.training`): the use case's default search on windows of `--train-rows` rows
(50 k, 200 k and 1 M), each in its own process; it needs no database. Prints a table and writes
the figures to `--out` as JSON: churn's at its top level, an example's under `use_cases.<name>` in
the same shape.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from include.platform.tables import predictions
from tools.bench import gate, training
from tools.bench.data import CHURN, FAMILIES, PARAMS, USE_CASES, Bench, bench_spec, prepare
from tools.bench.process import REPO, run_measurement

log = logging.getLogger(__name__)

PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# Per stage: the paths in the order they run and print, with their labels; then the raw stages.
LABELS = {
    "scoring": {
        "project": "project: the DAG's shard + publish of the partition",
        "naive": "naive: read_parquet -> predict -> to_sql",
        "raw_read": "raw: Parquet read of the partition",
        "raw_predict": "raw: predict on the in-memory frame",
        "raw_write": "raw: adbc_ingest into predictions",
    },
    "ingest": {
        "project": "project: read_sources -> ingest_partition",
        "naive": "naive: read_sql + read_csv -> merge -> to_parquet",
        "raw_read": "raw: ADBC read of the day",
        "raw_csv": "raw: pyarrow CSV read",
        "raw_write": "raw: Parquet write of the partition",
    },
}
SHARDED = "sharded_scoring"
SHARDED_LABELS = {
    "one_task": "1 task: 1 shard + publish, one process",
    "k_shards": "K shards one after another, then publish",
    "swap": "PostgreSQL: partition swap of a full day",
    "delete_copy": "PostgreSQL: DELETE + COPY of a full day",
    "raw_predict": "raw: predict on the in-memory frame",
    "raw_write": "raw: adbc_ingest of the day's predictions",
}
FIGURES = ("seconds", "rows", "peak_rss_mb")
RAW = {
    "scoring": {"read": "raw_read", "predict": "raw_predict", "write": "raw_write"},
    "ingest": {"read": "raw_read", "read_csv": "raw_csv", "write": "raw_write"},
}
# The stages that measure churn only (its ingest sources; the sharded day on Celery).
CHURN_ONLY = ("ingest", SHARDED)


@contextlib.contextmanager
def bench_database(admin_url: str) -> Iterator[str]:
    """The URL of a new database on `admin_url`'s server, dropped on the way out."""
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def run_path(bench: Bench, name: str, *args: str) -> dict[str, Any]:
    """One path in a fresh process, after emptying the predictions table and a checkpoint."""
    engine = bench.engine()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f"TRUNCATE {predictions.name}")
        conn.exec_driver_sql("CHECKPOINT")
    engine.dispose()
    figures = run_measurement("tools.bench.paths", name, str(bench.file), *args, what=f"bench path {name}")
    log.info("%s: %.2f s, %d rows, peak RSS %.0f MB", name, *(figures[k] for k in FIGURES))
    return figures


def repeated(bench: Bench, stage: str, repeats: int) -> dict[str, dict[str, Any]]:
    """Each of the stage's paths run `repeats` times, taking turns (a change in the machine's load
    touches every path alike); per path, its median run (`median_run`)."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in LABELS[stage]}
    for _ in range(repeats):
        for name, figures in runs.items():
            figures.append(run_path(bench, f"{stage}.{name}"))
    return {name: median_run(figures) for name, figures in runs.items()}


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median seconds (the lower of the middle two for an even count), with every run's
    seconds (`runs_s`) and the highest peak RSS of them all."""
    median = sorted(runs, key=lambda figures: figures["seconds"])[(len(runs) - 1) // 2]
    return {
        **median,
        "runs_s": [figures["seconds"] for figures in runs],
        "peak_rss_mb": max(figures["peak_rss_mb"] for figures in runs),
    }


def summarise(stage: str, rows: int, paths: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A stage's figures in the shape of `.bench/results.json`."""
    project, naive = paths["project"]["seconds"], paths["naive"]["seconds"]
    raw = {key: paths[name]["seconds"] for key, name in RAW[stage].items()}
    return {
        "rows": rows,
        "project_s": project,
        "naive_s": naive,
        "raw_s": raw,
        "speedup_vs_naive": naive / project,
        "ratio_vs_raw_sum": project / sum(raw.values()),
        "peak_rss_mb": paths["project"]["peak_rss_mb"],
        "paths": paths,
    }


def table(stage: str, summary: dict[str, Any], use_case: str) -> str:
    """The stage's figures as a text table, then its ratios."""
    runs = len(next(iter(summary["paths"].values()))["runs_s"])
    title = f"{stage} ({use_case}), {summary['rows']:,} rows, median of {runs} runs"
    lines = [f"{title:<58}{'seconds':>9}{'rows/s':>12}{'peak RSS MB':>13}"]
    for name, label in LABELS[stage].items():
        figures = summary["paths"][name]
        rate = figures["rows"] / figures["seconds"] if figures["seconds"] else float("inf")
        lines.append(f"  {label:<56}{figures['seconds']:>9.2f}{rate:>12,.0f}{figures['peak_rss_mb']:>13,.0f}")
    raw_sum = sum(summary["raw_s"].values())
    lines.append(
        f"  project / naive = {1 / summary['speedup_vs_naive']:.3f} "
        f"({summary['speedup_vs_naive']:.1f}x faster); "
        f"project / sum of raw stages ({raw_sum:.2f} s) = {summary['ratio_vs_raw_sum']:.2f}"
    )
    return "\n".join(lines)


def sharded(bench: Bench, shards: int) -> dict[str, Any]:
    """The `sharded_scoring` figures: one task, K shards (each in its own process) and their publish,
    and the day's swap against DELETE + COPY."""
    paths = {"one_task": run_path(bench, f"{SHARDED}.one_task")}
    runs = [run_path(bench, f"{SHARDED}.shard", str(i), str(shards)) for i in range(shards)]
    results = bench.workdir / "shard-results.json"
    results.write_text(json.dumps([run.pop("counts") for run in runs]))
    publish = run_path(bench, f"{SHARDED}.publish", str(results))
    paths["k_shards"] = {
        "seconds": sum(run["seconds"] for run in runs) + publish["seconds"],
        "rows": publish["rows"],
        "peak_rss_mb": max(run["peak_rss_mb"] for run in runs),
        "shard_seconds": [run["seconds"] for run in runs],
        "shard_peak_rss_mb": [run["peak_rss_mb"] for run in runs],
        "publish_s": publish["seconds"],
        "publish_peak_rss_mb": publish["peak_rss_mb"],
        "predictions": publish["predictions"],
    }
    paths["swap"] = run_path(bench, f"{SHARDED}.swap")
    paths["delete_copy"] = run_path(bench, f"{SHARDED}.delete_copy")
    paths["raw_predict"] = run_path(bench, "scoring.raw_predict")
    paths["raw_write"] = run_path(bench, "scoring.raw_write")
    return {
        "rows": bench.rows,
        "shards": shards,
        "one_task_s": paths["one_task"]["seconds"],
        "k_shards_s": paths["k_shards"]["seconds"],
        "peak_rss_mb_per_shard": paths["k_shards"]["peak_rss_mb"],
        "swap_s": paths["swap"]["seconds"],
        "delete_copy_s": paths["delete_copy"]["seconds"],
        "swap_speedup": paths["delete_copy"]["seconds"] / paths["swap"]["seconds"],
        "paths": paths,
    }


def sharded_table(summary: dict[str, Any]) -> str:
    """The sharded figures as a text table."""
    title = f"{SHARDED}, {summary['rows']:,} rows, K = {summary['shards']}"
    lines = [f"{title:<58}{'seconds':>9}{'rows/s':>12}{'peak RSS MB':>13}"]
    for name, label in SHARDED_LABELS.items():
        figures = summary["paths"][name]
        rate = figures["rows"] / figures["seconds"] if figures["seconds"] else float("inf")
        lines.append(f"  {label:<56}{figures['seconds']:>9.2f}{rate:>12,.0f}{figures['peak_rss_mb']:>13,.0f}")
    k = summary["paths"]["k_shards"]
    lines.append(
        f"  K shards: peak RSS per shard process {k['peak_rss_mb']:,.0f} MB, publish {k['publish_s']:.2f} s "
        f"({k['publish_peak_rss_mb']:,.0f} MB); swap {summary['swap_speedup']:.1f}x faster than DELETE + COPY"
    )
    return "\n".join(lines)


def save(out: Path, rows: int, results: dict[str, Any], use_case: str) -> None:
    """Write this run's stages into `out`, under the use case's key (churn's at the top level), keeping
    the stages it did not measure, and file the scoring and ingest figures under `by_rows` too, so
    that runs at 1 M and 5 M rows sit side by side (training holds its own sizes)."""
    saved = json.loads(out.read_text()) if out.exists() else {}
    if use_case == CHURN:
        saved = with_run(saved, rows, results)
    else:
        examples = saved.setdefault("use_cases", {})
        examples[use_case] = with_run(examples.get(use_case, {}), rows, results)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(saved, indent=2))


def with_run(saved: dict[str, Any], rows: int, results: dict[str, Any]) -> dict[str, Any]:
    """A use case's saved figures with this run's stages in place, its scoring and ingest also under
    `by_rows`."""
    by_rows = saved.pop("by_rows", {})
    measured_at_rows = {stage: results[stage] for stage in LABELS if stage in results}
    if measured_at_rows:
        by_rows.setdefault(str(rows), {}).update({**measured_at_rows, "machine": results["machine"]})
    return {**saved, **results, "by_rows": by_rows}


def arguments() -> argparse.ArgumentParser:
    """The bench's command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows to generate (default 1,000,000)")
    parser.add_argument(
        "--use-case",
        choices=USE_CASES,
        default=CHURN,
        help="whose rows and model: churn (binary, default), or a worked example: hotel_rates "
        "(regression), hpc_jobs (multiclass), on the scoring and train stages",
    )
    parser.add_argument(
        "--pg-url", default=PG_URL, help="a PostgreSQL server; a bench database is made on it"
    )
    parser.add_argument("--out", type=Path, default=REPO / ".bench" / "results.json")
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="runs of each scoring and ingest path, taking turns; the median is reported (default 3)",
    )
    parser.add_argument(
        "--family",
        choices=sorted(PARAMS),
        help="the scored model's family (default: the task's linear model, logistic_regression; "
        "linear, Ridge, for a regression)",
    )
    parser.add_argument(
        "--stage",
        choices=[*sorted(LABELS), SHARDED, "train", "gate"],
        action="append",
        help="measure only this stage (repeatable; default: scoring, ingest and sharded_scoring; "
        "an example's: scoring)",
    )
    parser.add_argument(
        "--shards", type=int, help="K for sharded_scoring (default: as the DAG plans the day)"
    )
    parser.add_argument(
        "--train-rows",
        type=int,
        action="append",
        help="a training window's rows (repeatable; default 50,000, 200,000 and 1,000,000)",
    )
    parser.add_argument(
        "--max-trial-rows",
        type=training.trial_cap,
        default=argparse.SUPPRESS,
        help="training: rows each trial is cross-validated on (default: the use case's spec's; none: all)",
    )
    parser.add_argument(
        "--gate-rows", type=int, default=1_000_000, help="gate: holdout rows (default 1,000,000)"
    )
    parser.add_argument(
        "--celery-workers",
        type=int,
        nargs="*",
        default=[],
        help="sharded_scoring on the CeleryExecutor too, on each of these worker counts (make bench: 1 2)",
    )
    return parser


def family_and_stages(
    parser: argparse.ArgumentParser, args: argparse.Namespace, task: str
) -> tuple[str, list[str]]:
    """The scored model's family and the stages to measure; a family or a stage the use case cannot
    be measured with is a usage error."""
    family = args.family or FAMILIES[task][0]
    if family not in FAMILIES[task]:
        parser.error(f"--family {family}: a {task} model is one of {', '.join(FAMILIES[task])}")
    refused = [stage for stage in args.stage or () if args.use_case != CHURN and stage in CHURN_ONLY]
    if refused:
        parser.error(f"--stage {refused[0]} measures churn only, not --use-case {args.use_case}")
    return family, args.stage or ([*LABELS, SHARDED] if args.use_case == CHURN else ["scoring"])


def report(results: dict[str, Any], stages: list[str], use_case: str) -> str:
    """Every measured stage's table, then the machine's load."""
    tables = [table(stage, results[stage], use_case) for stage in stages]
    if SHARDED in results:
        tables.append(sharded_table(results[SHARDED]))
    if "training" in results:
        tables.append(training.table(results["training"]))
    if "gate" in results:
        tables.append(gate.table(results["gate"]))
    if "celery" in results.get(SHARDED, {}):
        from tools.scaleout.bench import table as celery_table

        tables.append(celery_table(results[SHARDED]["celery"], results[SHARDED]["one_task_s"]))
    return "\n\n".join(tables) + f"\n\nload average (1 min) before/after: {results['machine']['load_1m']}"


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = arguments()
    args = parser.parse_args(argv)
    use_case, spec = args.use_case, bench_spec(args.use_case, args.rows)
    family, chosen = family_and_stages(parser, args, spec.task)
    stages = [stage for stage in chosen if stage in LABELS]
    max_trial_rows = getattr(args, "max_trial_rows", spec.training.max_trial_rows)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    load_before = os.getloadavg()[0]
    results: dict[str, Any] = {}
    batch_rows = spec.scoring.batch_rows
    if stages or SHARDED in chosen:
        with bench_database(args.pg_url) as url, tempfile.TemporaryDirectory(prefix="bench-") as tmp:
            bench = prepare(Bench(url, Path(tmp), args.rows, batch_rows, family, use_case=use_case))
            for stage in stages:
                results[stage] = summarise(stage, args.rows, repeated(bench, stage, args.repeats))
            if SHARDED in chosen:
                from include.scoring.score import ShardCosts, shard_count

                # As the DAG plans the day for two workers (at the default costs).
                planned = shard_count(args.rows, args.rows, 2, ShardCosts(), spec.scoring.shard_rows)
                results[SHARDED] = sharded(bench, args.shards or planned)
                if args.celery_workers:
                    from tools.scaleout.bench import celery_bench

                    results[SHARDED]["celery"] = celery_bench(bench, args.celery_workers, args.pg_url)
    if "train" in chosen:
        sizes = args.train_rows or training.SIZES
        results["training"] = training.summarise(use_case, sizes, max_trial_rows)
    if "gate" in chosen:
        results["gate"] = gate.summarise(args.gate_rows)
    results["machine"] = {
        "cpus": os.cpu_count(),
        "load_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "family": family,
        "batch_rows": batch_rows,
        "repeats": args.repeats,
    }
    save(args.out, args.rows, results, use_case)
    print(report(results, stages, use_case))
    return results


if __name__ == "__main__":
    main()
