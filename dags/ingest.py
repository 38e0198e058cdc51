"""
### Ingest: one day of a use case's sources into the lake

For the run's day (`ds`), reads the SQL table's rows and the day's files, validates them against the
use case's spec, joins them on the entity id, quarantines bad rows with their reasons and replaces
the partition `raw/<use case>/ds=YYYY-MM-DD/` in the lake. A rerun or a backfill of the same day
gives the same partition; the run record (`ingest_runs`) reconciles rows read, quarantined and
written per source.

**Which day.** A scheduled run covers the previous day `[ds, ds + 1 day)` (a data-interval
timetable, UTC). A manual run takes the form's `ds`; without it, its logical date names the day
(see `include/partition.py`).

One DAG per spec file in `include/usecases/`: `<use case>_ingest`.
"""

from __future__ import annotations

from airflow.sdk import CronDataIntervalTimetable, dag, task

from include.assets import raw_asset
from include.config import Settings
from include.dag_factory import build_dags
from include.dag_settings import default_args, ds_param, end_date, start_date
from include.usecases.spec import UseCase

SETTINGS = Settings.from_env()


# multiple_outputs=False: a `-> dict` task's result is one XCom (`return_value`, all that its readers
# pull); the annotation alone would also push one XCom per key, an API call and a database write each.
def ingest_dag(spec: UseCase):
    @dag(
        dag_id=spec.ingest_dag_id,
        description=f"Ingest {spec.name}: SQL + files -> validated daily partition",
        doc_md=__doc__,
        schedule=CronDataIntervalTimetable(spec.schedule.ingest, timezone=spec.schedule.timezone),
        start_date=start_date(spec),
        end_date=end_date(SETTINGS),
        catchup=False,
        max_active_runs=8,
        tags=[spec.name, "ingest"],
        default_args=default_args(spec, SETTINGS),
        params={"ds": ds_param("Day to ingest")},
    )
    def ingest_pipeline():
        @task(outlets=[raw_asset(spec.name)], multiple_outputs=False)
        def ingest(**context) -> dict:
            from include.dag_context import run_facts, stores, tag_event
            from include.ingest.task import run_ingest

            result = run_ingest(run_facts(spec.name, context), stores())
            tag_event(context, raw_asset(spec.name), {"ds": result.ds})
            return result.to_dict()

        ingest()

    return ingest_pipeline()


build_dags(globals(), ingest_dag, SETTINGS.spec_dir)
