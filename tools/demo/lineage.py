"""One day's lineage, read back from the OpenLineage events a file transport wrote.

The demo (and the end-to-end test) point Airflow's OpenLineage provider at a file of JSON lines; this
follows a day's partition through the jobs' completed runs, as a lineage server would: the ingest
run that wrote it and the sources it read, the scoring run that read it with a model file and wrote
the predictions, and the training run that wrote that model file from its window's partitions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

Dataset = tuple[str, str]  # OpenLineage's (namespace, name)


def dataset_of(uri: str) -> Dataset:
    """The OpenLineage dataset a URI of `include.io.lineage` becomes (the providers' converters)."""
    parts = urlsplit(uri)
    if parts.scheme == "file":
        return "file", parts.path
    if parts.scheme == "s3":
        return f"s3://{parts.netloc}", parts.path.lstrip("/")
    if parts.scheme == "postgres":
        return f"postgres://{parts.netloc}", ".".join(parts.path.strip("/").split("/"))
    raise ValueError(f"no OpenLineage dataset for {uri}")


@dataclass(frozen=True)
class JobRun:
    """A completed task run: its job (`dag_id.task_id`), Airflow run id, inputs and outputs."""

    job: str
    run_id: str
    inputs: frozenset[Dataset]
    outputs: frozenset[Dataset]


@dataclass(frozen=True)
class DayLineage:
    """What one day's predictions came from."""

    partition: Dataset
    sources: frozenset[Dataset]
    model: Dataset
    predictions: frozenset[Dataset]
    trained_on: frozenset[Dataset]


def completed_runs(path: Path) -> list[JobRun]:
    """Every COMPLETE event of a task in the file, oldest first."""
    runs = []
    for line in path.read_text().splitlines():
        event = json.loads(line)
        facets = event["run"].get("facets", {})
        if event.get("eventType") != "COMPLETE" or "task" not in facets.get("airflow", {}):
            continue
        runs.append(
            JobRun(
                job=event["job"]["name"],
                run_id=facets["airflow"]["dagRun"]["run_id"],
                inputs=frozenset((d["namespace"], d["name"]) for d in event.get("inputs", [])),
                outputs=frozenset((d["namespace"], d["name"]) for d in event.get("outputs", [])),
            )
        )
    return runs


def day_lineage(runs: list[JobRun], use_case: str, partition: Dataset) -> DayLineage:
    """Follow `partition` (a day's) through the newest runs that wrote and read it.

    Raises:
        LookupError: naming the link that no event makes.
    """
    ingest = _newest(runs, f"{use_case}_ingest.ingest", lambda r: partition in r.outputs, "wrote", partition)
    scoring = _newest(runs, f"{use_case}_score.publish", lambda r: partition in r.inputs, "read", partition)
    [model] = scoring.inputs - {partition}
    register = _newest(runs, f"{use_case}_train.register", lambda r: model in r.outputs, "wrote", model)
    plans = [r for r in runs if r.job == f"{use_case}_train.plan" and r.run_id == register.run_id]
    if not plans:
        raise LookupError(f"no {use_case}_train.plan event in run {register.run_id}")
    return DayLineage(
        partition=partition,
        sources=ingest.inputs,
        model=model,
        predictions=scoring.outputs,
        trained_on=plans[-1].inputs,
    )


def _newest(runs: list[JobRun], job: str, links, verb: str, dataset: Dataset) -> JobRun:
    found = [r for r in runs if r.job == job and links(r)]
    if not found:
        raise LookupError(f"no {job} event {verb} {dataset[0]}:{dataset[1]}")
    return found[-1]
