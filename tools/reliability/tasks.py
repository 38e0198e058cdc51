"""The DAGs' task bodies run in order, outside Airflow, against a `World`'s connections.

`python -m tools.reliability.tasks ingest|score <ds>` runs one in a process of its own (what the
kill experiment kills); the functions run them in the caller's process.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from include.runs import RunFacts, Stores

USE_CASE = "churn"


def ingest(ds: str, run_id: str = "reliability") -> dict[str, Any]:
    """The ingest DAG's one task."""
    from include.ingest.task import run_ingest

    return run_ingest(RunFacts.of(USE_CASE, ds, f"{run_id}-ingest-{ds}"), Stores.from_settings()).to_dict()


def score(ds: str, run_id: str = "reliability", model_version: int | None = None) -> dict[str, Any]:
    """The score DAG's sensor poke, then its scoring tasks in this process (resolve, plan, every shard,
    publish; the drift tasks are not run)."""
    from include.scoring.task import partition_ready, run_scoring

    run = RunFacts.of(USE_CASE, ds, f"{run_id}-score-{ds}", model_version=model_version)
    stores = Stores.from_settings()
    if not partition_ready(run, stores):
        raise RuntimeError(f"ds={ds}: the sensor found no partition it can trust")
    return run_scoring(run, stores).to_dict()


def train(ds: str, run_id: str = "reliability", **params: Any) -> dict[str, Any]:
    """The training DAG: plan, every trial, fit and register, gate, promote if it passed."""
    from include.training import task

    run, stores = RunFacts.of(USE_CASE, ds, f"{run_id}-train-{ds}", **params), Stores.from_settings()
    plan = task.plan_training(run, stores)
    results = [task.run_trial(run, plan, trial, stores) for trial in task.sample_trials(run)]
    candidate = task.fit_and_register(run, plan, results, stores)
    passed = task.gate(run, plan, candidate, stores, alert=lambda reasons, details: None)
    promoted = task.promote(run, candidate, stores) if passed else None
    return {"candidate": candidate.to_dict(), "passed": passed, "promotion": promoted}


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
