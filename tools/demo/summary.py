"""The demo's closing summary: what ran, the row counts, where the outputs are, what to open next.

It first waits, through Airflow's REST API, until nothing of the demo's DAGs is in flight: a
scoring day whose drift persists asks for a retrain (the retrain Asset), and the training run that
starts is the demo's too, so every version listed has its gate decision.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from include.config import Settings
from include.io.connections import store_for
from include.ui import page_urls
from tools.demo.airflow_api import run_states, wait_until_idle

if TYPE_CHECKING:
    from tools.demo.airflow_api import AirflowApi
    from tools.demo.run import Phases

log = logging.getLogger(__name__)

# How long the summary waits for runs in flight: a training run takes about a minute here.
IN_FLIGHT_TIMEOUT = 600


def ingest_totals(use_case: str) -> dict:
    """Partitions and row counts summed over the ingest run records (`python -m include.cli runs`)."""
    from include.cli import runs

    rows = runs(use_case)
    read: Counter[str] = Counter()
    quarantined: Counter[str] = Counter()
    for row in rows:
        read.update(row["rows_read"])
        quarantined.update(row["rows_quarantined"])
    days = [row["ds"] for row in rows]
    return {
        "partitions": len(rows),
        "first": days[0] if days else None,
        "last": days[-1] if days else None,
        "read": dict(read),
        "quarantined": dict(quarantined),
        "written": sum(row["rows_written"] for row in rows),
    }


def wait_for_in_flight(api: AirflowApi, dag_ids: tuple[str, ...], timeout: float = IN_FLIGHT_TIMEOUT) -> None:
    """Wait until no run of `dag_ids` is queued or running (and no asset event waits to start one).

    Raises:
        SystemExit: after `timeout` seconds, naming the runs still in flight.
    """
    log.info("summary: waiting for runs still in flight of %s", ", ".join(dag_ids))
    try:
        wait_until_idle(api, dag_ids, timeout=timeout)
    except TimeoutError as exc:
        raise SystemExit(
            f"The demo's runs did not all finish within {timeout} s ({exc}); the summary would list "
            f"versions whose gate has not decided. See {api.base_url} and .demo/logs/scheduler.log."
        ) from None


def other_runs(api: AirflowApi, dag_id: str) -> dict[str, int]:
    """The DAG's runs that neither a backfill nor the demo itself started (a retrain on drift), by state."""
    return dict(
        Counter(s for r, s in run_states(api, dag_id).items() if not r.startswith(("backfill__", "demo__")))
    )


def print_summary(api: AirflowApi, dag_ids: tuple[str, ...], facts: dict, phases: Phases) -> None:
    """Wait for the runs in flight, then print what ran, with `facts` and the phases' seconds."""
    wait_for_in_flight(api, dag_ids)
    phases.done("runs set off by scoring (retrain on drift)")
    airflow_seconds = sum(v for k, v in phases.seconds.items() if k != "seed + migrate")
    facts = {
        **facts,
        **{f"{dag_id} runs on drift": runs for dag_id in dag_ids if (runs := other_runs(api, dag_id))},
        **{f"seconds: {phase}": seconds for phase, seconds in phases.seconds.items()},
        "seconds: Airflow part (all but seed + migrate)": round(airflow_seconds, 1),
    }
    airflow_url = api.base_url
    width = max(42, *map(len, facts))
    nav, page = page_urls(airflow_url, "churn")
    settings = Settings.from_env()
    lake = store_for(settings.lake_conn_id)
    totals = ingest_totals("churn")
    lake_partitions = len(lake.list_keys("raw/churn/"))
    lines = [
        "",
        "=" * 72,
        "Demo summary",
        "=" * 72,
        *(f"  {k:<{width}} {v}" for k, v in facts.items()),
        "",
        "Ingest (churn_ingest)",
        f"  partitions recorded / in the lake          {totals['partitions']} / {lake_partitions}"
        f"  ({totals['first']} .. {totals['last']})",
        f"  rows read per source                       {totals['read']}",
        f"  rows quarantined per source                {totals['quarantined']}",
        f"  rows written                               {totals['written']}",
        f"  partitions                                 {lake.uri('raw/churn/')}",
        f"  quarantine                                 {lake.uri('quarantine/churn/')}",
        "  run records                                table ingest_runs (connection platform_db)",
        "",
        "Registry (python -m include.cli models churn)",
        *_indented(_models_table()),
        "",
        "Gate decisions (python -m include.cli gate churn)",
        *_indented(_gate_table()),
        "",
        "Scoring (python -m include.cli predictions churn; drift churn)",
        *_indented(_scoring_table()),
        f"  days scored by the champion of their day   {_scored_by_champion()}",
        f"  predictions                                table predictions; {lake.uri('predictions/churn/')}",
        "",
        "Drift and retraining (python -m include.cli drift churn)",
        "  the demo's billing raises MonthlyCharges 25 % from 2025-03-25 (tools/demo/seed.py)",
        *_indented(_drift_week()),
        "",
        "Realised performance (python -m include.cli performance churn)",
        "  each customer's churn is observed a week after the snapshot; a day is judged once matured",
        *_indented(_realised_table()),
        "",
        f"Lineage (the OpenLineage events of the tasks that report datasets, {_lineage_file()})",
        *_indented(_lineage_of_day(lake, settings.dag_end_date)),
        "",
        "Next",
        f"  make up                                    Airflow's UI on the demo, {airflow_url}",
        f"  the ML platform page (after make up)       {nav}  (the page alone: {page})",
        "  make airflow ARGS='dags test churn_ingest 2025-03-31'",
        '  python -m include.cli predictions churn --ds 2025-03-31   (after: eval "$(make -s demo-env)")',
        "  python -m include.cli drift churn --ds 2025-03-31",
        '  make airflow ARGS="dags test churn_train 2025-03-31 -c \'{\\"estimators\\": [\\"dummy\\"]}\'"',
        "=" * 72,
    ]
    print("\n".join(lines))


def _indented(text: str) -> list[str]:
    return [f"  {line}" for line in text.splitlines()]


def _models_table() -> str:
    """Every version with its gate decision (`passed`, `rejected`, or `none yet`)."""
    from include.cli import format_table, gate, models

    rows = models("churn")
    decided = {d["candidate_version"]: "passed" if d["passed"] else "rejected" for d in gate("churn")}
    keep = ["version", "status", "gate", "aliases", "ds", "family", "roc_auc", "accuracy", "sha256"]
    return (
        format_table(
            [r | {"gate": decided.get(r["version"], "none yet"), "sha256": r["sha256"][:12]} for r in rows],
            keep,
        )
        if rows
        else "none"
    )


def _gate_table() -> str:
    from include.cli import gate, gate_table

    rows = gate("churn")
    return gate_table(rows, "roc_auc") if rows else "none"


def _realised_table() -> str:
    """The matured days grouped by the version that scored them: the realised ROC AUC's range and
    mean against the holdout figure, the coverage, the days that decayed."""
    from include.cli import format_table, performance

    rows = [
        {
            "model": f"v{version}",
            "matured days": f"{days[0]['ds']} .. {days[-1]['ds']} ({len(days)})",
            "realised roc_auc": _spread([d["realised"] for d in days if d["realised"] is not None]),
            "expected": days[0]["expected"],
            "rows with an outcome": sum(d["rows_matched"] for d in days),
            "least coverage": f"{min(d['coverage'] for d in days):.0%}",
            "decayed days": sum(d["decayed"] for d in days),
        }
        for version, days in _by_version(performance("churn"), "version")
    ]
    return format_table(rows, list(rows[0])) if rows else "no matured day yet"


def _lineage_file() -> Path:
    """The file the demo's OpenLineage transport appends to (the Makefile's setting)."""
    return Path(json.loads(os.environ["AIRFLOW__OPENLINEAGE__TRANSPORT"])["log_file_path"])


def _lineage_of_day(lake, ds: dt.date | None) -> str:
    """The last day's predictions followed back through the events: model, partitions, sources."""
    from include.io.lake import RAW_ZONE, partition_key
    from tools.demo.lineage import completed_runs, dataset_of, day_lineage

    runs = completed_runs(_lineage_file())
    if ds is None:
        return f"{len(runs)} completed task runs"
    try:
        found = day_lineage(runs, "churn", dataset_of(lake.uri(partition_key(RAW_ZONE, "churn", ds))))
    except LookupError as exc:
        return f"{len(runs)} completed task runs; ds={ds} not linked: {exc}"
    trained_on = sorted(_day_in(name) for _, name in found.trained_on)
    return "\n".join(
        [
            f"{len(runs)} completed task runs; the predictions of ds={ds}:",
            f"  written to     {', '.join(f'{ns}:{name}' for ns, name in sorted(found.predictions))}",
            f"  read from      {found.partition[1]}",
            f"  with the model {found.model[1]}",
            f"  trained on     {len(trained_on)} partitions ({trained_on[0]} .. {trained_on[-1]})",
            f"  ingested from  {', '.join(sorted(name for _, name in found.sources))}",
        ]
    )


def _day_in(name: str) -> str:
    """The `ds=` of a partition's name."""
    return name.split("ds=")[1].split("/", maxsplit=1)[0]


def _by_version(days: list[dict], key: str) -> list[tuple[int, list[dict]]]:
    """The days (CLI rows, oldest first) grouped by the model version under `key`, by version."""
    grouped: dict[int, list[dict]] = {}
    for day in days:
        grouped.setdefault(day[key], []).append(day)
    return sorted(grouped.items())


def _spread(values: list[float]) -> str:
    """`mean (min .. max)` of a few figures."""
    if not values:
        return "-"
    return f"{sum(values) / len(values):.4f} ({min(values):.4f} .. {max(values):.4f})"


def _drift_week() -> str:
    """Days graded warn or alert, and the retrain requests they made (the cooldown holds the rest)."""
    from include.cli import drift
    from include.platform.queries import retrain_request_records
    from include.platform.schema import platform_engine

    flagged = [d for d in drift("churn") if d["level"] != "ok"]
    requests = retrain_request_records(platform_engine(Settings.from_env().platform_db_conn_id), "churn")
    lines = [f"{d['ds']}  {d['level']:<5}  {d['worst_feature']} PSI {d['psi']:.3f}" for d in flagged] or [
        "no day beyond the noise"
    ]
    lines.append(
        f"retrain requests (churn_retrain_request Asset): {len(requests)}"
        + "".join(f"\n  {r.ds}: {sorted(r.features)}" for r in requests)
    )
    return "\n".join(lines)


def _scored_by_champion() -> str:
    """How many scored days used the champion as of that day (the registry's point-in-time answer):
    the demo scores beside a training run, and this says its gate came in time."""
    from include.cli import predictions
    from include.platform.schema import platform_engine
    from include.registry.registry import Registry

    registry = Registry(platform_engine(Settings.from_env().platform_db_conn_id))
    days = predictions("churn")
    wrong = [
        f"{d['ds']} (v{d['model_version']})"
        for d in days
        if (champion := registry.champion_as_of("churn", dt.date.fromisoformat(str(d["ds"]))))
        and champion.version != d["model_version"]
    ]
    return f"{len(days) - len(wrong)} of {len(days)}" + (f"; not: {', '.join(wrong)}" if wrong else "")


def _scoring_table() -> str:
    """Scored days grouped by the model that scored them: days, rows, mean score, drift levels."""
    from include.cli import format_table, predictions

    rows = [
        {
            "model": f"v{version}",
            "days": f"{days[0]['ds']} .. {days[-1]['ds']} ({len(days)})",
            "rows scored": sum(d["rows"] for d in days),
            "rejected": sum(d["rows_rejected"] or 0 for d in days),
            "mean score": sum(d["score_mean"] * d["rows"] for d in days) / sum(d["rows"] for d in days),
            "drift (days)": dict(Counter(d["drift"] for d in days)),
        }
        for version, days in _by_version(predictions("churn"), "model_version")
    ]
    return format_table(rows, list(rows[0])) if rows else "none"
