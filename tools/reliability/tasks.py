"""The DAGs' task bodies run in order, outside Airflow, against a `World`'s connections.

`python -m tools.reliability.tasks ingest|score <ds>` runs one in a process of its own (what the
kill experiment kills); the functions run them in the caller's process.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from tools.reliability.world import task_context

USE_CASE = "churn"


def ingest(ds: str, run_id: str = "reliability") -> dict[str, Any]:
    """The ingest DAG's one task."""
    from include.ingest.task import run_ingest

    return run_ingest(USE_CASE, task_context(ds, f"{run_id}-ingest-{ds}"))


def score(ds: str, run_id: str = "reliability", model_version: int | None = None) -> dict[str, Any]:
    """The score DAG's sensor poke, then its scoring tasks in this process (resolve, plan, every shard,
    publish; the drift tasks are not run)."""
    from include.scoring.task import partition_ready, run_scoring

    context = task_context(ds, f"{run_id}-score-{ds}", model_version=model_version)
    if not partition_ready(USE_CASE, context):
        raise RuntimeError(f"ds={ds}: the sensor found no partition it can trust")
    return run_scoring(USE_CASE, context)


def train(ds: str, run_id: str = "reliability", **params: Any) -> dict[str, Any]:
    """The training DAG: plan, every trial, fit and register, gate, promote if it passed."""
    from include.training import task

    context = task_context(ds, f"{run_id}-train-{ds}", **params)
    plan = task.plan_training(USE_CASE, context)
    trials = task.sample_trials(USE_CASE, context["params"])
    results = [task.run_trial(USE_CASE, plan, t, context["params"]) for t in trials]
    candidate = task.fit_and_register(USE_CASE, plan, results, context["params"], context["run_id"])
    passed = task.gate(USE_CASE, plan, candidate, context)
    promoted = task.promote(USE_CASE, candidate) if passed else None
    return {"candidate": candidate, "passed": passed, "promotion": promoted}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("task", choices=["ingest", "score"])
    parser.add_argument("ds")
    parser.add_argument("--run-id", default="reliability")
    args = parser.parse_args()
    result = {"ingest": ingest, "score": score}[args.task](args.ds, args.run_id)
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
