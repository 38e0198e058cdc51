"""
### Score: the day's entities with the champion of that day, and the day's drift

For the run's day (`ds`), once the day's partition is ingested (`wait_for_partition`):

- `resolve` picks the model once for the whole run: the version named in `model_version`, else the
  champion *as of* that day (point-in-time: a backfill reproduces history), with its sha256;
- `plan` splits the partition into shards, contiguous ranges of its Parquet row groups (and so of
  its ids), from the file's footer alone: per worker on the `score` queue, as many as keep a task's
  start-up (measured on the last scored day) under a tenth of its time, none under
  `scoring.shard_rows` rows;
- `score_shard` (mapped, one task instance per shard, named "shard i of N") loads exactly the
  resolved version (sha256 checked; a worker process keeps it for its next shard), streams its row
  groups in bounded batches, stages its predictions in the lake and, on PostgreSQL, loads them
  into a table of its own, and returns its counts (on the CeleryExecutor the shards go to the
  `score` queue, `PLATFORM_SCORE_QUEUE`, on any worker);
- `publish` merges the counts exactly, replaces the day's rows in the `predictions` table in one
  transaction (on PostgreSQL the shards' tables attached as the day's partition: no row moved) and
  the lake's `predictions/<use case>/ds=.../`,
  records the run (`score_runs`: rows in = rows scored + rows rejected, with reasons) and the
  drift, and removes the staging. Readers see the old day or the new one, never a mix of shards.

**Drift.** Each day's features are compared with the champion's training rows (PSI per feature,
`drift_measures`). When a feature has alerted on `drift.alert_days` consecutive days, `request_retrain`
emits the retrain Asset event that schedules the training DAG, at most once per `drift.cooldown_days`.

**Which day.** The same daily data-interval timetable as ingest (UTC): the run for `[ds, ds + 1 day)`
starts when that day is over and its first task waits for the day's ingest. A manual run takes the
form's `ds`, or its logical date (see `include/partition.py`). Backfills work like ingest's.
"""

from __future__ import annotations

from airflow.sdk import CronDataIntervalTimetable, Param, dag, task

from include.assets import raw_asset, retrain_asset
from include.config import Settings
from include.dag_factory import build_dags
from include.dag_settings import day_sensor_args, default_args, ds_param, end_date, start_date
from include.usecases.spec import UseCase

SETTINGS = Settings.from_env()


# multiple_outputs=False: a `-> dict` task's result is one XCom (`return_value`, all that its readers
# pull); the annotation alone would also push one XCom per key, an API call and a database write each.
def score_dag(spec: UseCase):
    @dag(
        dag_id=spec.score_dag_id,
        description=f"Score {spec.name}: the day's entities with that day's champion, and drift",
        doc_md=__doc__,
        schedule=CronDataIntervalTimetable(spec.schedule.ingest, timezone=spec.schedule.timezone),
        start_date=start_date(spec),
        end_date=end_date(SETTINGS),
        catchup=False,
        max_active_runs=4,
        tags=[spec.name, "score"],
        default_args=default_args(spec, SETTINGS),
        params={
            "ds": ds_param("Day to score"),
            "model_version": Param(
                None,
                type=["null", "integer"],
                minimum=1,
                title="Model version",
                description="A registered version to score with. Empty: the champion as of ds.",
            ),
        },
    )
    def score_pipeline():
        @task.sensor(inlets=[raw_asset(spec.name)], **day_sensor_args(SETTINGS))
        def wait_for_partition(**context) -> bool:
            from include.dag_context import run_facts, stores
            from include.scoring.task import partition_ready

            return partition_ready(run_facts(spec.name, context), stores())

        @task(multiple_outputs=False)
        def resolve(**context) -> dict:
            from include.dag_context import run_facts, stores
            from include.scoring.task import resolve_model

            return resolve_model(run_facts(spec.name, context), stores()).to_dict()

        @task
        def plan(**context) -> list[dict]:
            from include.dag_context import run_facts, stores
            from include.scoring.task import plan_shards, score_queue_workers

            workers = score_queue_workers(SETTINGS.score_queue)
            return [s.to_dict() for s in plan_shards(run_facts(spec.name, context), stores(), workers)]

        @task(queue=SETTINGS.score_queue, map_index_template="{{ shard_label }}", multiple_outputs=False)
        def score_shard(resolved: dict, shard: dict, **context) -> dict:
            from airflow.sdk import get_current_context

            from include.dag_context import run_facts, stores
            from include.scoring.score import Shard
            from include.scoring.task import Resolved, score_shard

            part = Shard.from_dict(shard)
            get_current_context()["shard_label"] = part.label
            run = run_facts(spec.name, context)
            return score_shard(run, Resolved.from_dict(resolved), part, stores()).to_dict()

        @task(multiple_outputs=False)
        def publish(resolved: dict, planned: list[dict], scored: list[dict], **context) -> dict:
            # `scored[:]`: one request for every shard's result (iterating asks once past the end).
            from include.dag_context import run_facts, stores
            from include.scoring.score import Shard
            from include.scoring.task import Resolved, ShardResult, publish

            return publish(
                run_facts(spec.name, context),
                Resolved.from_dict(resolved),
                [Shard.from_dict(shard) for shard in planned],
                [ShardResult.from_dict(result) for result in scored[:]],
                stores(),
            ).to_dict()

        @task.short_circuit
        def retrain_due(scored: dict, **context) -> bool:
            from include.dag_context import run_facts, stores
            from include.scoring.task import PublishedDay, retrain_due

            return retrain_due(run_facts(spec.name, context), PublishedDay.from_dict(scored), stores())

        @task(outlets=[retrain_asset(spec.name)], multiple_outputs=False)
        def request_retrain(scored: dict, **context) -> dict:
            from airflow.sdk.exceptions import AirflowSkipException

            from include.dag_context import run_facts, stores, tag_event
            from include.scoring.task import PublishedDay, RetrainBlocked, request_retrain

            run = run_facts(spec.name, context)
            try:
                extra = request_retrain(run, PublishedDay.from_dict(scored), stores())
            except RetrainBlocked as blocked:
                raise AirflowSkipException(str(blocked)) from blocked
            tag_event(context, retrain_asset(spec.name), extra)
            return extra

        ready = wait_for_partition()
        resolved, planned = resolve(), plan()
        ready >> [resolved, planned]
        shards = score_shard.partial(resolved=resolved).expand(shard=planned)
        published = publish(resolved, planned, shards)
        retrain_due(published) >> request_retrain(published)

    return score_pipeline()


build_dags(globals(), score_dag, SETTINGS.spec_dir)
