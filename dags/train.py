"""
### Train: tune, cross-validate, gate against the champion, promote

As of the run's day (`ds`): the window of `window_days` days of lake partitions ending on `ds` is
split by time, the newest `holdout_days` being the holdout, never seen by fitting or tuning. Trials
of every model family run as mapped tasks (on the CeleryExecutor on the `train` queue,
`PLATFORM_TRAIN_QUEUE`), each cross-validated over time on the training part;
the best is refitted and registered as a numbered version with its metrics, data window, trials,
library and code versions and the sha256 of its model file.

**The gate.** The champion is scored on the candidate's holdout. The candidate passes only if its
primary metric beats the champion's by at least `min_improvement` (a tie does not), clears the
floor, and no guard-rail (accuracy) falls by more than its tolerance; a candidate trained on older
data than the champion is never promoted. A rejected candidate skips `promote` (skipped, not
failed) and stays in the registry as `rejected`; `python -m include.cli gate <use case>` says why.

**When, and which day.** Weekly (spec `schedule.train`, a trigger timetable): the Monday 03:00 run
trains as of Sunday. Also whenever scoring asks for it on drift (the retrain Asset): that run trains
as of the drifting day. A manual run takes the form's `ds`, or its logical date (see
`include/partition.py`).
"""

from __future__ import annotations

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, task

from include.assets import retrain_asset
from include.config import Settings
from include.dag_factory import build_dags
from include.dag_settings import default_args, ds_param, end_date, start_date
from include.usecases.spec import (
    ESTIMATORS,
    MAX_WINDOW_DAYS,
    MIN_IMPROVEMENT_RANGE,
    MIN_TRAINING_DAYS,
    N_TRIALS_RANGE,
    UseCase,
)

SETTINGS = Settings.from_env()


# multiple_outputs=False: a `-> dict` task's result is one XCom (`return_value`, all that its readers
# pull); the annotation alone would also push one XCom per key, an API call and a database write each.
def train_dag(spec: UseCase):
    @dag(
        dag_id=spec.train_dag_id,
        description=f"Train {spec.name}: tune, cross-validate, gate against the champion, promote",
        doc_md=__doc__,
        schedule=AssetOrTimeSchedule(
            timetable=CronTriggerTimetable(spec.schedule.train, timezone=spec.schedule.timezone),
            assets=[retrain_asset(spec.name)],
        ),
        start_date=start_date(spec),
        end_date=end_date(SETTINGS),
        catchup=False,
        max_active_runs=1,
        tags=[spec.name, "train"],
        default_args=default_args(spec, SETTINGS),
        params={
            "ds": ds_param("Train as of"),
            "estimators": Param(
                list(spec.training.estimators),
                type="array",
                items={"type": "string", "enum": list(ESTIMATORS)},
                minItems=1,
                uniqueItems=True,
                title="Model families",
                description=f"Families to tune, a subset of {', '.join(ESTIMATORS)}.",
            ),
            "n_trials": Param(
                spec.training.n_trials,
                type="integer",
                minimum=N_TRIALS_RANGE[0],
                maximum=N_TRIALS_RANGE[1],
                title="Trials per family",
                description="Parameter sets sampled per family (the dummy baseline has one).",
            ),
            "min_improvement": Param(
                spec.gate.min_improvement,
                type="number",
                minimum=MIN_IMPROVEMENT_RANGE[0],
                maximum=MIN_IMPROVEMENT_RANGE[1],
                title="Minimum improvement",
                description=f"How much the candidate's {spec.gate.primary} must beat the champion's by.",
            ),
            "window_days": Param(
                spec.training.window_days,
                type="integer",
                minimum=spec.training.holdout_days + MIN_TRAINING_DAYS,
                maximum=MAX_WINDOW_DAYS,
                title="Window (days)",
                description=f"Days up to ds; the newest {spec.training.holdout_days} are the holdout.",
            ),
        },
    )
    def train_pipeline():
        @task(multiple_outputs=False)
        def plan(**context) -> dict:
            from include.dag_context import run_facts, stores
            from include.training.task import plan_training

            return plan_training(run_facts(spec.name, context), stores()).to_dict()

        @task
        def sample_trials(**context) -> list[dict]:
            from include.dag_context import run_facts
            from include.training.task import sample_trials

            return [trial.to_dict() for trial in sample_trials(run_facts(spec.name, context))]

        @task(
            queue=SETTINGS.train_queue,
            map_index_template="{{ task.op_kwargs['trial']['trial_id'] }}",
            multiple_outputs=False,
        )
        def trial(plan: dict, trial: dict, **context) -> dict:
            from include.dag_context import run_facts, stores
            from include.training.estimators import Trial
            from include.training.task import TrainingPlan, run_trial

            run = run_facts(spec.name, context)
            return run_trial(run, TrainingPlan.from_dict(plan), Trial.from_dict(trial), stores()).to_dict()

        @task(multiple_outputs=False)
        def register(plan: dict, results: list, **context) -> dict:
            from include.dag_context import run_facts, stores
            from include.training.task import TrainingPlan, fit_and_register
            from include.training.tuning import TrialResult

            # `results[:]`: one request for every trial's result (iterating asks once past the end).
            trials = [TrialResult.from_dict(result) for result in results[:]]
            run = run_facts(spec.name, context)
            return fit_and_register(run, TrainingPlan.from_dict(plan), trials, stores()).to_dict()

        @task.short_circuit
        def gate(plan: dict, candidate: dict, **context) -> bool:
            from include.alerting import rejection_alert
            from include.dag_context import run_facts, stores
            from include.training.task import Candidate, TrainingPlan, gate

            run = run_facts(spec.name, context)
            return gate(
                run,
                TrainingPlan.from_dict(plan),
                Candidate.from_dict(candidate),
                stores(),
                rejection_alert(context, run),
            )

        @task(multiple_outputs=False)
        def promote(candidate: dict, **context) -> dict:
            from airflow.sdk.exceptions import AirflowSkipException

            from include.dag_context import run_facts, stores
            from include.training.task import Candidate, NotApproved, approved_by, promote

            run, found, where = run_facts(spec.name, context), Candidate.from_dict(candidate), stores()
            person = None
            if spec.gate.approval is not None:
                try:
                    person = approved_by(run, found, context["ti"].xcom_pull(task_ids=APPROVE), where)
                except NotApproved as refused:
                    raise AirflowSkipException(str(refused)) from refused
            return promote(run, found, where, person)

        planned = plan()
        results = trial.partial(plan=planned).expand(trial=sample_trials())
        candidate = register(planned, results)
        passed = gate(planned, candidate)
        if spec.gate.approval is None:
            passed >> promote(candidate)
            return
        request, approve = approval_steps(spec, candidate)
        passed >> request
        approve >> promote(candidate)

    return train_pipeline()


APPROVE = "approve"
APPROVE_OPTION, REJECT_OPTION = "Approve", "Reject"


def approval_steps(spec: UseCase, candidate):
    """The person's say, when the spec asks for it: the request (the gate's evidence and the
    version's page), then Airflow's human-in-the-loop task ("Required actions"), Approve or Reject,
    no answer in time taken as Reject; `promote` reads the answer. The first task and the last."""
    import datetime as dt

    from airflow.providers.standard.operators.hitl import HITLOperator

    @task(multiple_outputs=False)
    def approval_request(candidate: dict, **context) -> str:
        from airflow.configuration import conf

        from include.dag_context import run_facts, stores
        from include.training.task import Candidate, approval_request
        from include.ui import page_urls

        found = Candidate.from_dict(candidate)
        page = page_urls(conf.get("api", "base_url", fallback=""), spec.name)[1] + f"versions/{found.version}"
        return approval_request(run_facts(spec.name, context), found, stores(), page)

    # Not ApprovalOperator: its Reject leaves no answer behind (no XCom) for the record to name who.
    approve = HITLOperator(
        task_id=APPROVE,
        subject=f"Promote a new {spec.name} champion?",
        body="{{ ti.xcom_pull(task_ids='approval_request') }}",
        options=[APPROVE_OPTION, REJECT_OPTION],
        defaults=[REJECT_OPTION],
        response_timeout=dt.timedelta(hours=spec.gate.approval.timeout_hours),
    )
    request = approval_request(candidate)
    request >> approve
    return request, approve


build_dags(globals(), train_dag, SETTINGS.spec_dir)
