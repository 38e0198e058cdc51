"""
### Evaluate: the outcomes observed on the day, and the realised performance of every matured day

For a use case whose spec declares `outcomes` (a source of observed labels and `maturity_days`):

- `wait_for_scoring` waits until the run's day (`ds`) is scored: an outcome observed on `ds` can
  judge a prediction of that day or before, so those predictions are in when its outcomes come in;
- `ingest_outcomes` reads the outcomes observed on the run's day (`ds`), checks them as ingest
  checks a source (an unknown entity, a duplicate, a wrong type: quarantined and counted by reason)
  and replaces that day's rows of the `outcomes` table (`outcome_runs` holds the counts);
- `evaluate` judges the last `lookback_days` matured scored days (scored `maturity_days` or more
  before `ds`): each day's stored predictions, by the version that scored it, against the earliest
  outcome of each entity observed since, up to `ds`. Per day, every metric of the task with a
  bootstrap interval, the coverage, and the version's holdout figure (`realised_performance`). A day
  is rewritten only when its figures change, never by an older evaluation than the last;
- when the primary metric's interval has missed the holdout figure on `decay_days` consecutive
  matured days, `decay_due` lets `request_retrain` alert and emit the retrain Asset (the same one,
  and the same cooldown, as drift).

**Which day.** The same daily data-interval timetable as ingest; backfills work alike. Runs may go
at once and in any order: a day's figures are only ever replaced by an evaluation of the same or a
later day (checked under the write lock), so the newest evaluation's figures stand.
"""

from __future__ import annotations

from airflow.sdk import CronDataIntervalTimetable, dag, task

from include.assets import retrain_asset
from include.config import Settings
from include.dag_factory import build_dags
from include.dag_settings import day_sensor_args, default_args, ds_param, end_date, start_date
from include.usecases.spec import UseCase

SETTINGS = Settings.from_env()


def evaluate_dag(spec: UseCase):
    if spec.outcomes is None:
        return None

    @dag(
        dag_id=spec.evaluate_dag_id,
        description=f"Evaluate {spec.name}: observed outcomes -> realised performance of matured days",
        doc_md=__doc__,
        schedule=CronDataIntervalTimetable(spec.schedule.ingest, timezone=spec.schedule.timezone),
        start_date=start_date(spec),
        end_date=end_date(SETTINGS),
        catchup=False,
        max_active_runs=4,
        tags=[spec.name, "evaluate"],
        default_args=default_args(spec, SETTINGS),
        params={"ds": ds_param("Day of observation to ingest and evaluate on")},
    )
    def evaluate_pipeline():
        @task.sensor(**day_sensor_args(SETTINGS))
        def wait_for_scoring(**context) -> bool:
            from include.dag_context import run_facts, stores
            from include.outcomes.task import day_scored

            return day_scored(run_facts(spec.name, context), stores())

        @task(multiple_outputs=False)
        def ingest_outcomes(**context) -> dict:
            from include.dag_context import run_facts, stores
            from include.outcomes.task import run_outcome_ingest

            return run_outcome_ingest(run_facts(spec.name, context), stores()).to_dict()

        @task(multiple_outputs=False)
        def evaluate(**context) -> dict:
            from include.dag_context import run_facts, stores
            from include.outcomes.task import run_evaluation

            return run_evaluation(run_facts(spec.name, context), stores()).to_dict()

        @task.short_circuit
        def decay_due(evaluated: dict, **context) -> bool:
            from include.dag_context import run_facts, stores
            from include.outcomes.task import Evaluated, decay_retrain_due

            return decay_retrain_due(run_facts(spec.name, context), Evaluated.from_dict(evaluated), stores())

        @task(outlets=[retrain_asset(spec.name)], multiple_outputs=False)
        def request_retrain(evaluated: dict, **context) -> dict:
            from airflow.sdk.exceptions import AirflowSkipException

            from include.alerting import PlatformAlert
            from include.dag_context import run_facts, stores, tag_event
            from include.outcomes.task import (
                DecayRetrainBlocked,
                Evaluated,
                decay_reasons,
                request_decay_retrain,
            )

            run, result = run_facts(spec.name, context), Evaluated.from_dict(evaluated)
            try:
                extra = request_decay_retrain(run, result, stores())
            except DecayRetrainBlocked as blocked:
                raise AirflowSkipException(str(blocked)) from blocked
            reasons = decay_reasons(run, result)
            tz = spec.schedule.timezone
            PlatformAlert(SETTINGS.alerts_conn_id, tz, event="decayed", reasons=reasons, use_case=spec.name)(
                context
            )
            tag_event(context, retrain_asset(spec.name), extra)
            return extra

        evaluated = evaluate()
        wait_for_scoring() >> ingest_outcomes() >> evaluated
        decay_due(evaluated) >> request_retrain(evaluated)

    return evaluate_pipeline()


build_dags(globals(), evaluate_dag, SETTINGS.spec_dir)
