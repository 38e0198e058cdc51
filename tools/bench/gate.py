"""The gate's paired bootstrap at a large holdout, per task: seconds and peak memory.

`python -m tools.bench --stage gate` (and `make bench STAGE=gate`): for a binary, a four-class and a
regression holdout of `--gate-rows` rows (default 1,000,000, synthetic outputs of two models), the
gate's `metric_bounds` over the task's default primary metric and a guard-rail, 1,000 resamples,
each in a fresh process (`python -m tools.bench.gate <task> <rows>`) so the peak RSS is its own. The
resamples' weights are drawn block by block (`include.training.compare.weight_blocks`): memory does
not grow with resamples x rows.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from typing import Any

import numpy as np

from tools.bench.process import run_measurement

TASKS = ("binary", "multiclass", "regression")
METRICS = {
    "binary": ["roc_auc", "accuracy"],
    "multiclass": ["log_loss", "macro_f1"],
    "regression": ["rmse", "mae"],
}
RESAMPLES = 1000


def _holdout(task: str, rows: int):
    from include.training.compare import Scored

    rng = np.random.default_rng(0)
    if task == "regression":
        y = rng.normal(100, 30, rows)
        return (
            y,
            Scored(y + rng.normal(0, 20, rows), regression=True),
            Scored(y + rng.normal(0, 21, rows), regression=True),
        )
    if task == "multiclass":
        y = rng.integers(0, 4, rows)
        sides = []
        for _ in range(2):
            proba = rng.dirichlet(np.ones(4), rows)
            proba[np.arange(rows), y] += 1
            sides.append(Scored(proba / proba.sum(axis=1, keepdims=True)))
        return y, *sides
    y = rng.integers(0, 2, rows)
    return (
        y,
        Scored(np.clip(0.3 * y + rng.random(rows) * 0.7, 0, 1)),
        Scored(np.clip(0.29 * y + rng.random(rows) * 0.71, 0, 1)),
    )


def measure(task: str, rows: int) -> dict[str, Any]:
    """One task's bootstrap in this process: seconds, and peak RSS above the inputs'."""
    from include.training.compare import metric_bounds

    y, candidate, champion = _holdout(task, rows)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    metric_bounds(y, candidate, champion, METRICS[task], 0.9, RESAMPLES, 42)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "task": task,
        "rows": rows,
        "metrics": METRICS[task],
        "resamples": RESAMPLES,
        "seconds": round(time.perf_counter() - started, 2),
        "peak_mb": round(peak / 1024),
        "inputs_mb": round(before / 1024),
    }


def summarise(rows: int) -> list[dict[str, Any]]:
    """Every task's figures, each measured in a fresh process."""
    return [
        run_measurement("tools.bench.gate", task, str(rows), what=f"gate bench ({task})") for task in TASKS
    ]


def table(figures: list[dict[str, Any]]) -> str:
    lines = [f"gate: paired bootstrap, {RESAMPLES} resamples, peak RSS of a fresh process"]
    lines += [
        f"  {f['task']:<11} {f['rows']:>9,} rows  {', '.join(f['metrics']):<20} {f['seconds']:>6.1f} s  "
        f"peak {f['peak_mb']:>4} MB (inputs {f['inputs_mb']} MB)"
        for f in figures
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1], int(sys.argv[2]))))
