"""The bench's training stage (`make bench STAGE=train`): the churn spec's default search on big windows.

A window of N rows is shaped like the churn data: the features of the 7,043 real rows resampled
with replacement, spread evenly at random over the spec's `window_days` days ending on the bench's
day, and each row's label drawn from the churn probability a teacher model (hist gradient boosting,
fitted on the real rows) gives it. Drawn labels keep the task honest at any size: a resampled row
that recurs does not recur with its label, so memorising rows does not pay, and the holdout ROC AUC
measures what a model learnt (the teacher's own ROC AUC on a window, its ceiling, is reported too).

Each size is trained in its own process, as the train DAG trains (`include.training.task`): the
time split, every trial of the spec's search cross-validated (one after another, as one worker runs
the mapped tasks), the best refitted on the whole training part, the holdout metrics and the
permutation importance. `python -m tools.bench.training ROWS [--max-trial-rows N|none]` measures
one size and prints one JSON line.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from include.usecases.spec import UseCase, get_spec
from tools.bench.data import DAY, PARAMS, real_rows, resample
from tools.bench.process import run_measurement

log = logging.getLogger(__name__)

SIZES = (50_000, 200_000, 1_000_000)
TEACHER = "hist_gradient_boosting"
# The teacher's probability of churn, kept beside the features (the model never reads it).
TEACHER_COLUMN = "teacher_proba"


def with_trial_cap(spec: UseCase, max_trial_rows: int | None) -> UseCase:
    """The spec with `training.max_trial_rows` set (None: every trial on every row)."""
    raw = spec.model_dump()
    raw["training"]["max_trial_rows"] = max_trial_rows
    return UseCase.model_validate(raw)


def churn_window(spec: UseCase, rows: int, seed: int = 0) -> pd.DataFrame:
    """`rows` churn-like rows over the spec's window ending on `DAY`, with the teacher's probability
    of churn (`TEACHER_COLUMN`) from which each row's label is drawn."""
    from include.training.estimators import Trial
    from include.training.preprocess import split_xy
    from include.training.split import DATE_COLUMN
    from include.training.tuning import fit_final

    real = real_rows(spec)
    teacher = fit_final(spec, Trial(f"{TEACHER}-teacher", TEACHER, PARAMS[TEACHER]), real, threshold=0.5)
    frame = resample(real, spec, rows, seed).to_pandas()
    rng = np.random.default_rng(seed)
    days = rng.integers(0, spec.training.window_days, rows)
    frame[DATE_COLUMN] = pd.Timestamp(DAY) - pd.to_timedelta(days, unit="D")
    frame[TEACHER_COLUMN] = teacher.predict_proba(split_xy(frame, spec)[0])
    label = spec.label
    negative = next(v for v in spec.columns[label.column].allowed or () if v != label.positive)
    frame[label.column] = np.where(rng.random(rows) < frame[TEACHER_COLUMN], label.positive, negative)
    return frame


def train_window(spec: UseCase, frame: pd.DataFrame) -> dict[str, Any]:
    """Train `frame` as the train DAG does, timing each stage; the figures as JSON-able values."""
    from include.training.estimators import sample_trials
    from include.training.importance import permutation_importances
    from include.training.metrics import evaluate
    from include.training.preprocess import split_xy
    from include.training.split import DATE_COLUMN, split_holdout
    from include.training.tuning import best_trial, fit_final, run_trial, trial_rows

    training, primary = spec.training, spec.gate.primary
    clock = {"started": time.perf_counter()}

    def lap(stage: str) -> None:
        clock[stage] = time.perf_counter()

    train, holdout = split_holdout(frame, DATE_COLUMN, DAY, training.window_days, training.holdout_days)
    trials = sample_trials(training.estimators, training.n_trials, training.random_state)
    lap("split")
    results = [run_trial(spec, trial, train) for trial in trials]
    lap("trials")
    best = best_trial(results, primary)
    model = fit_final(spec, best.trial, train, best.threshold)
    lap("final_fit")
    x_holdout, y_holdout = split_xy(holdout, spec)
    metrics = evaluate(y_holdout, model.predict_proba(x_holdout), model.threshold)
    lap("holdout")
    importance = permutation_importances(model, x_holdout, y_holdout, primary, training.random_state)
    lap("importance")
    stages = ("split", "trials", "final_fit", "holdout", "importance")
    starts = ("started", *stages[:-1])
    return {
        "rows": len(frame),
        "train_rows": len(train),
        "holdout_rows": len(holdout),
        "trial_rows": len(trial_rows(spec, train)),
        "max_trial_rows": training.max_trial_rows,
        "seconds": clock["importance"] - clock["started"],
        "stages_s": {stage: clock[stage] - clock[start] for stage, start in zip(stages, starts, strict=True)},
        "trials": {
            r.trial.trial_id: {"cv_mean": r.primary_mean, "seconds": r.duration_seconds} for r in results
        },
        "best": {"trial_id": best.trial.trial_id, "params": dict(best.trial.params)},
        "holdout_roc_auc": metrics["roc_auc"],
        "teacher_roc_auc": evaluate(y_holdout, holdout[TEACHER_COLUMN], 0.5)["roc_auc"],
        "top_feature": importance["features"][0]["feature"],
    }


def measure(rows: int, max_trial_rows: int | None) -> dict[str, Any]:
    """One size, in this process: the window (not timed), its training (timed), the peak RSS."""
    from include.io.memory import peak_rss_mb

    spec = with_trial_cap(get_spec("churn"), max_trial_rows)
    figures = train_window(spec, churn_window(spec, rows))
    return {**figures, "peak_rss_mb": peak_rss_mb()}


def run_size(rows: int, max_trial_rows: int | None) -> dict[str, Any]:
    """`measure` of one size in a fresh process, so that its peak RSS is its own."""
    cap = "none" if max_trial_rows is None else str(max_trial_rows)
    figures = run_measurement(
        "tools.bench.training", str(rows), "--max-trial-rows", cap, what=f"training bench at {rows:,} rows"
    )
    log.info(
        "training, %d rows: %.1f s, holdout ROC AUC %.4f",
        rows,
        figures["seconds"],
        figures["holdout_roc_auc"],
    )
    return figures


def summarise(sizes: Sequence[int], max_trial_rows: int | None) -> dict[str, Any]:
    """Every size's figures, and each size's time over the previous size's (with the rows' ratio)."""
    by_rows = {str(rows): run_size(rows, max_trial_rows) for rows in sizes}
    ordered = sorted(sizes)
    ratios = {
        f"{big}/{small}": {
            "rows": big / small,
            "seconds": by_rows[str(big)]["seconds"] / by_rows[str(small)]["seconds"],
        }
        for small, big in itertools.pairwise(ordered)
    }
    return {"max_trial_rows": max_trial_rows, "sizes": by_rows, "time_ratios": ratios}


def table(summary: dict[str, Any]) -> str:
    """The training stage's figures as a text table, then the time ratios."""
    header = f"{'rows':>10}{'train':>10}{'trial rows':>12}{'seconds':>10}{'trials s':>10}{'fit s':>8}"
    header += f"{'holdout AUC':>13}{'teacher AUC':>13}{'peak MB':>9}  best"
    lines = [
        f"training (the churn spec's default search), max_trial_rows {summary['max_trial_rows']}",
        header,
    ]
    for rows, f in summary["sizes"].items():
        lines.append(
            f"{int(rows):>10,}{f['train_rows']:>10,}{f['trial_rows']:>12,}{f['seconds']:>10.1f}"
            f"{f['stages_s']['trials']:>10.1f}{f['stages_s']['final_fit']:>8.1f}{f['holdout_roc_auc']:>13.4f}"
            f"{f['teacher_roc_auc']:>13.4f}{f['peak_rss_mb']:>9,.0f}  {f['best']['trial_id']}"
        )
    for name, ratio in summary["time_ratios"].items():
        lines.append(f"  time {name}: {ratio['seconds']:.2f}x for {ratio['rows']:.1f}x the rows")
    return "\n".join(lines)


def trial_cap(value: str) -> int | None:
    """A `--max-trial-rows` value: a number of rows, or `none` for no cap."""
    return None if value == "none" else int(value)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Train one churn-like window and print its figures as JSON.")
    parser.add_argument("rows", type=int)
    parser.add_argument("--max-trial-rows", type=trial_cap, default=get_spec("churn").training.max_trial_rows)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    print(json.dumps(measure(args.rows, args.max_trial_rows)))
