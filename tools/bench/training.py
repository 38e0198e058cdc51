"""The bench's training stage (`make bench STAGE=train`): a use case's default search on big windows.

A window of N rows is shaped like the use case's data (`tools.bench.data`: churn's Telco rows, or a
worked example's): the features of the real rows resampled with replacement, spread evenly at random
over the spec's `window_days` days ending on the bench's day, and each row's label drawn from what a
teacher model (hist gradient boosting, fitted on the real rows) says of it: for churn (binary) from
its probability of churn; for a multiclass use case from its class probabilities; for a regression,
its prediction plus a residual drawn from its own residuals on the real rows (clipped at the label
column's `min`). Drawn labels keep the task honest at any size: a resampled row that recurs does not
recur with its label, so memorising rows does not pay, and the holdout's primary metric
(`gate.primary`) measures what a model learnt (the teacher's own on the holdout, its ceiling, is
reported too).

Each size is trained in its own process, as the train DAG trains (`include.training.task`): the
time split, every trial of the spec's search cross-validated (one after another, as one worker runs
the mapped tasks), the best refitted on the whole training part, the holdout metrics and the
permutation importance. `python -m tools.bench.training ROWS [--use-case NAME] [--max-trial-rows
N|none]` measures one size and prints one JSON line.
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

from include.usecases.spec import UseCase
from tools.bench.data import CHURN, DAY, PARAMS, USE_CASES, bench_spec, real_rows, resample
from tools.bench.process import run_measurement

log = logging.getLogger(__name__)

SIZES = (50_000, 200_000, 1_000_000)
TEACHER = "hist_gradient_boosting"
# The teacher's outputs, kept beside the features (the model never reads them): its probability of
# churn or its predicted value; a multiclass teacher's probability of each class in `<column>_<class>`.
TEACHER_COLUMN = "teacher_proba"


def with_trial_cap(spec: UseCase, max_trial_rows: int | None) -> UseCase:
    """The spec with `training.max_trial_rows` set (None: every trial on every row)."""
    raw = spec.model_dump()
    raw["training"]["max_trial_rows"] = max_trial_rows
    return UseCase.model_validate(raw)


def labelled_window(spec: UseCase, rows: int, seed: int = 0) -> pd.DataFrame:
    """`rows` rows like the use case's over the spec's window ending on `DAY`, each label drawn from
    the teacher's outputs (module doc), which are kept beside them (`teacher_columns`)."""
    from include.training.estimators import Trial
    from include.training.preprocess import label_classes, split_xy
    from include.training.split import DATE_COLUMN
    from include.training.tuning import fit_final

    real = real_rows(spec)
    classes = label_classes(spec, real)
    teacher = fit_final(spec, Trial(f"{TEACHER}-teacher", TEACHER, PARAMS[TEACHER]), real, 0.5, classes)
    frame = resample(real, spec, rows, seed).to_pandas()
    rng = np.random.default_rng(seed)
    days = rng.integers(0, spec.training.window_days, rows)
    frame[DATE_COLUMN] = pd.Timestamp(DAY) - pd.to_timedelta(days, unit="D")
    outputs = teacher.outputs(split_xy(frame, spec, classes)[0])
    frame[teacher_columns(classes)] = outputs.reshape(rows, -1)
    label = spec.label
    if spec.task == "regression":
        x_real, y_real = split_xy(real, spec)
        drawn = outputs + rng.choice(y_real.to_numpy() - teacher.outputs(x_real), rows)
        floor = spec.columns[label.column].min
        frame[label.column] = drawn if floor is None else np.maximum(drawn, floor)
    elif spec.task == "multiclass":
        # The first class whose cumulative probability passes a uniform draw.
        drawn = (rng.random((rows, 1)) > outputs.cumsum(axis=1)).sum(axis=1)
        frame[label.column] = np.asarray(classes, dtype=object)[np.minimum(drawn, len(classes) - 1)]
    else:
        negative = next(v for v in spec.columns[label.column].allowed or () if v != label.positive)
        frame[label.column] = np.where(rng.random(rows) < outputs, label.positive, negative)
    return frame


def teacher_columns(classes: Sequence[object] | None) -> list[str]:
    """Where a window keeps the teacher's outputs: one column, or one per class."""
    return [TEACHER_COLUMN] if classes is None else [f"{TEACHER_COLUMN}_{c}" for c in classes]


def train_window(spec: UseCase, frame: pd.DataFrame) -> dict[str, Any]:
    """Train `frame` as the train DAG does, timing each stage; the figures as JSON-able values."""
    from include.training.estimators import sample_trials
    from include.training.importance import permutation_importances
    from include.training.metrics import evaluate_outputs
    from include.training.preprocess import label_classes, split_xy
    from include.training.split import DATE_COLUMN, split_holdout
    from include.training.tuning import best_trial, fit_final, run_trial, trial_rows

    training, primary = spec.training, spec.gate.primary
    clock = {"started": time.perf_counter()}

    def lap(stage: str) -> None:
        clock[stage] = time.perf_counter()

    train, holdout = split_holdout(frame, DATE_COLUMN, DAY, training.window_days, training.holdout_days)
    classes = label_classes(spec, frame)
    trials = sample_trials(training.estimators, training.n_trials, training.random_state, spec.task)
    lap("split")
    results = [run_trial(spec, trial, train, classes) for trial in trials]
    lap("trials")
    best = best_trial(results, primary)
    model = fit_final(spec, best.trial, train, best.threshold, classes)
    lap("final_fit")
    x_holdout, y_holdout = split_xy(holdout, spec, classes)
    metrics = evaluate_outputs(spec.task, y_holdout.to_numpy(), model.outputs(x_holdout), model.threshold)
    lap("holdout")
    importance = permutation_importances(model, x_holdout, y_holdout, primary, training.random_state)
    lap("importance")
    teacher = holdout[teacher_columns(classes)].to_numpy()
    teacher_metrics = evaluate_outputs(spec.task, y_holdout.to_numpy(), teacher if classes else teacher[:, 0])
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
        "metric": primary,
        f"holdout_{primary}": metrics[primary],
        f"teacher_{primary}": teacher_metrics[primary],
        "top_feature": importance["features"][0]["feature"],
    }


def measure(use_case: str, rows: int, max_trial_rows: int | None) -> dict[str, Any]:
    """One size, in this process: the window (not timed), its training (timed), the peak RSS."""
    from include.io.memory import peak_rss_mb

    spec = with_trial_cap(bench_spec(use_case, rows), max_trial_rows)
    figures = train_window(spec, labelled_window(spec, rows))
    return {**figures, "peak_rss_mb": peak_rss_mb()}


def run_size(use_case: str, rows: int, max_trial_rows: int | None) -> dict[str, Any]:
    """`measure` of one size in a fresh process, so that its peak RSS is its own."""
    cap = "none" if max_trial_rows is None else str(max_trial_rows)
    figures = run_measurement(
        "tools.bench.training",
        str(rows),
        "--use-case",
        use_case,
        "--max-trial-rows",
        cap,
        what=f"{use_case} training bench at {rows:,} rows",
    )
    metric = figures["metric"]
    log.info(
        "training %s, %d rows: %.1f s, holdout %s %.4f",
        use_case,
        rows,
        figures["seconds"],
        metric,
        figures[f"holdout_{metric}"],
    )
    return figures


def summarise(use_case: str, sizes: Sequence[int], max_trial_rows: int | None) -> dict[str, Any]:
    """Every size's figures, and each size's time over the previous size's (with the rows' ratio)."""
    by_rows = {str(rows): run_size(use_case, rows, max_trial_rows) for rows in sizes}
    ordered = sorted(sizes)
    ratios = {
        f"{big}/{small}": {
            "rows": big / small,
            "seconds": by_rows[str(big)]["seconds"] / by_rows[str(small)]["seconds"],
        }
        for small, big in itertools.pairwise(ordered)
    }
    return {"use_case": use_case, "max_trial_rows": max_trial_rows, "sizes": by_rows, "time_ratios": ratios}


def table(summary: dict[str, Any]) -> str:
    """The training stage's figures as a text table (the holdout's primary metric named), then the
    time ratios."""
    metric = next(iter(summary["sizes"].values()))["metric"]
    header = f"{'rows':>10}{'train':>10}{'trial rows':>12}{'seconds':>10}{'trials s':>10}{'fit s':>8}"
    header += f"{'holdout ' + metric:>19}{'teacher ' + metric:>19}{'peak MB':>9}  best"
    title = f"training (the {summary['use_case']} spec's default search)"
    lines = [f"{title}, max_trial_rows {summary['max_trial_rows']}", header]
    for rows, f in summary["sizes"].items():
        lines.append(
            f"{int(rows):>10,}{f['train_rows']:>10,}{f['trial_rows']:>12,}{f['seconds']:>10.1f}"
            f"{f['stages_s']['trials']:>10.1f}{f['stages_s']['final_fit']:>8.1f}"
            f"{f[f'holdout_{metric}']:>19.4f}{f[f'teacher_{metric}']:>19.4f}{f['peak_rss_mb']:>9,.0f}"
            f"  {f['best']['trial_id']}"
        )
    for name, ratio in summary["time_ratios"].items():
        lines.append(f"  time {name}: {ratio['seconds']:.2f}x for {ratio['rows']:.1f}x the rows")
    return "\n".join(lines)


def trial_cap(value: str) -> int | None:
    """A `--max-trial-rows` value: a number of rows, or `none` for no cap."""
    return None if value == "none" else int(value)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description="Train one window like a use case's; print its figures as JSON."
    )
    parser.add_argument("rows", type=int)
    parser.add_argument("--use-case", choices=USE_CASES, default=CHURN)
    parser.add_argument("--max-trial-rows", type=trial_cap, default=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    cap = getattr(args, "max_trial_rows", bench_spec(args.use_case, args.rows).training.max_trial_rows)
    print(json.dumps(measure(args.use_case, args.rows, cap)))
