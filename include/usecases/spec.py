"""A use case declared as data: the spec file's model, its validation and its loader.

Specs are validated when the DAGs are parsed, so a bad key or a dangling column name fails the
DAG file's import with a message that names the file and the key. Every bound that building a
use case's DAGs puts on a spec value (a trigger form's limits, a time zone, a date its schedule can
count from) is checked here too, so a spec that validates builds its DAGs.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from include.io.stores import check_key

log = logging.getLogger(__name__)

SPEC_DIR = Path(__file__).parent
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# What a use case predicts: one class against the other, one class among several, or a number.
TASKS = ("binary", "multiclass", "regression")
TASK_METRICS = {
    "binary": ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "log_loss"),
    "multiclass": ("log_loss", "accuracy", "balanced_accuracy", "macro_f1", "roc_auc_ovr"),
    "regression": ("rmse", "mae", "r2", "mape"),
}
METRICS = tuple(dict.fromkeys(m for metrics in TASK_METRICS.values() for m in metrics))
# The gate's primary metric when the spec names none.
DEFAULT_PRIMARY = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}
# Every metric is "higher is better" except these.
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae", "mape"})
ESTIMATORS = ("logistic_regression", "linear", "hist_gradient_boosting", "random_forest", "dummy")
# The families a spec tries when it names none; `linear` is logistic regression for a classifier,
# ridge regression for a number (`logistic_regression` is a classifier only).
DEFAULT_ESTIMATORS = {
    "binary": ("logistic_regression", "hist_gradient_boosting", "random_forest", "dummy"),
    "multiclass": ("logistic_regression", "hist_gradient_boosting", "random_forest", "dummy"),
    "regression": ("linear", "hist_gradient_boosting", "random_forest", "dummy"),
}
# The `training` keys a run's params override (the training DAG's trigger form); `min_improvement` too.
RUN_OVERRIDES = ("estimators", "n_trials", "window_days")

# Bounds the DAGs put on spec values, defined once: the training DAG's trigger form uses the same
# constants (dags/train.py), so a spec's value is always a valid default of its form.
N_TRIALS_RANGE = (1, 50)  # training.n_trials
MIN_IMPROVEMENT_RANGE = (0.0, 1.0)  # gate.min_improvement
MIN_TRAINING_DAYS = 7  # training.window_days is at least holdout_days + this
MAX_WINDOW_DAYS = 730  # training.window_days
# The name tags its DAGs, and Airflow refuses a tag longer than 100 characters.
MAX_NAME_CHARS = 100
# Days a schedule can count its runs from: near year 1 or 9999 the next run's date overflows.
START_DATE_RANGE = (dt.date(1970, 1, 1), dt.date(2099, 12, 31))


class SpecError(ValueError):
    """A use-case spec that cannot be used, with the file and the offending key in the message."""


class _Model(BaseModel):
    # NaN and infinities are refused: a `floor: .nan` would make every gate comparison false.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# The error type of a model validator's problems, each with its own key (see `_describe`).
_KEYED = "spec_keys"


def _keyed(problems: list[tuple[str, str]]) -> PydanticCustomError:
    """A model validator's error that keeps each problem's key (dotted, below the model), so that
    the spec's error names `label.positive` rather than the model that checked it."""
    text = "; ".join(f"{key}: {message}" for key, message in problems)
    return PydanticCustomError(_KEYED, "{text}", {"text": text, "problems": tuple(problems)})


LABEL_TYPES = {"string": str, "integer": int, "boolean": bool}


def direction(metric: str) -> int:
    """+1 when a higher value of `metric` is better, -1 when a lower one is."""
    return -1 if metric in LOWER_IS_BETTER else 1


class Label(_Model):
    """The column to predict, and how, by the use case's `task`.

    binary: `positive`, the value predicted as 1, written as the column's own value (`"Yes"`, `1`,
    `true`) and compared after the column's declared type. A label with more than two values is cut
    into `positive` against all the others only when the spec says so (`one_vs_rest: true`);
    otherwise such a label is refused, at parse when the column's `allowed` values show it, else by
    training on the values it finds.

    multiclass: `classes`, the classes in the order every model reports them (else the column's
    `allowed` values, else the values the first training window holds, each sorted).

    regression: a number; `log_scale: true` models log(1 + label) (prices, counts) and returns
    predictions on the label's own scale.
    """

    column: str
    positive: bool | int | str | None = None
    one_vs_rest: bool = False
    classes: tuple[bool | int | str, ...] | None = None
    log_scale: bool = False


class Schedule(_Model):
    timezone: str = "UTC"
    start_date: dt.date
    ingest: str
    train: str

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. 'UTC', 'Europe/Paris')") from None
        return value

    @field_validator("start_date")
    @classmethod
    def _countable_start(cls, value: dt.date) -> dt.date:
        first, last = START_DATE_RANGE
        if not first <= value <= last:
            raise ValueError(f"{value} is outside {first}..{last}")
        return value

    @field_validator("ingest", "train")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        from croniter import CroniterBadDateError, croniter

        if not croniter.is_valid(value):
            raise ValueError(f"not a valid cron expression: {value!r}")
        try:
            croniter(value, dt.datetime(2000, 1, 1)).get_next()
        except CroniterBadDateError:
            raise ValueError(f"{value!r} names no date that exists: it would never run") from None
        return value


class Source(_Model):
    name: str
    kind: Literal["sql", "files"]
    conn_id: str
    columns: tuple[str, ...] = Field(min_length=1)
    # sql
    table: str | None = None
    date_column: str | None = None
    # files
    prefix: str | None = None
    format: Literal["csv", "parquet"] = "csv"
    # Whether the files of subfolders under the day's prefix are read too (include/ingest/sources.py).
    recursive: bool = False

    @field_validator("prefix")
    @classmethod
    def _prefix_in_store(cls, value: str | None) -> str | None:
        # Checked with {ds} filled in, so only the date varies at run time; the store checks again.
        if value is not None:
            try:
                filled = value.format(ds="2000-01-01")
            except (IndexError, KeyError, ValueError):
                raise ValueError(f"`prefix`: {value!r} has braces other than {{ds}}") from None
            check_key(filled, "`prefix`", shown=value)
        return value

    @model_validator(mode="after")
    def _kind_fields(self) -> Source:
        needed = {"sql": ("table", "date_column"), "files": ("prefix",)}[self.kind]
        problems = [(key, f"a {self.kind} source needs it") for key in needed if getattr(self, key) is None]
        if self.kind == "sql" and self.recursive:
            problems.append(("recursive", "is for a files source, not a sql one"))
        named = [("table", self.table), ("date_column", self.date_column)]
        problems += [
            (key, f"{name!r} is not a plain SQL identifier")
            for key, name in named + [("columns", c) for c in self.columns]
            if name is not None and not IDENTIFIER.match(name)
        ]
        if self.prefix is not None and "{ds}" not in self.prefix:
            problems.append(("prefix", "must contain {ds}, the partition's date"))
        if problems:
            raise _keyed(problems)
        return self


class Column(_Model):
    type: Literal["string", "integer", "float", "boolean", "date", "datetime"]
    nullable: bool = False
    allowed: tuple[str | int | float | bool, ...] | None = None
    min: float | None = None
    max: float | None = None
    pattern: str | None = None


class Features(_Model):
    numeric: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    boolean: tuple[str, ...] = ()
    datetime: tuple[str, ...] = ()
    # Name -> expression over numeric columns (include/usecases/expressions.py), computed inside the
    # model's pipeline: `ratio: "TotalCharges / tenure"`, `"log1p(x)"`, `"missing(pdays, -1)"`.
    derived: dict[str, str] = {}

    @field_validator("derived")
    @classmethod
    def _expressions_parse(cls, value: dict[str, str]) -> dict[str, str]:
        from include.usecases.expressions import ExpressionError, parse

        problems = []
        for name, text in value.items():
            if not IDENTIFIER.match(name):
                problems.append(f"{name!r} is not a plain identifier")
            try:
                parse(text)
            except ExpressionError as exc:
                problems.append(f"{name}: {exc}")
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @property
    def inputs(self) -> tuple[str, ...]:
        """The columns the derived features read, in order of first use."""
        from include.usecases.expressions import columns_of, parse

        found: list[str] = []
        for text in self.derived.values():
            found += [c for c in columns_of(parse(text)) if c not in found]
        return tuple(found)

    @property
    def all(self) -> tuple[str, ...]:
        """Every column the model reads: the declared features, then the derived features' inputs."""
        declared = self.numeric + self.categorical + self.boolean + self.datetime
        return declared + tuple(c for c in self.inputs if c not in declared)


class Ingest(_Model):
    max_quarantine_fraction: float = Field(0.2, ge=0, le=1)
    # Rows per Parquet row group of a partition (a scoring shard reads one), and per batch read.
    row_group_rows: int = Field(100_000, ge=1)
    # DuckDB's memory for deduplicating, joining and sorting the day; beyond it, it spills to disk.
    memory_limit_mb: int = Field(128, ge=16)


class Training(_Model):
    window_days: int = Field(60, le=MAX_WINDOW_DAYS)
    holdout_days: int = Field(14, ge=1)
    cv_folds: int = Field(5, ge=2)
    n_trials: int = Field(4, ge=N_TRIALS_RANGE[0], le=N_TRIALS_RANGE[1])
    estimators: tuple[Literal[ESTIMATORS], ...] = Field(DEFAULT_ESTIMATORS["binary"], min_length=1)  # type: ignore[valid-type]
    random_state: int = 42
    # Rows each trial is cross-validated on: a larger training part is sampled (seeded) down to this,
    # so the search stops growing with the window; the chosen trial is refitted on every row.
    # null: every trial on every row.
    max_trial_rows: int | None = Field(100_000, ge=1000)

    @model_validator(mode="after")
    def _window_and_families(self) -> Training:
        problems = []
        least = self.holdout_days + MIN_TRAINING_DAYS
        if self.window_days < least:
            problems.append(
                (
                    "window_days",
                    f"{self.window_days} is less than holdout_days + {MIN_TRAINING_DAYS} = {least} "
                    f"(at least {MIN_TRAINING_DAYS} days to train on before the holdout)",
                )
            )
        repeated = sorted({e for e in self.estimators if self.estimators.count(e) > 1})
        if repeated:
            problems.append(("estimators", f"{', '.join(repeated)} named more than once"))
        if problems:
            raise _keyed(problems)
        return self


class Backtest(_Model):
    """The gate's rule on matured days: the candidate and the champion scored on the holdout's days
    whose outcomes have matured (at most the last `days` of them), the outcomes as the labels; the
    primary metric's paired gain must clear `min_improvement` at the gate's confidence (negative:
    the candidate may be that much worse)."""

    days: int = Field(7, ge=1, le=MAX_WINDOW_DAYS)
    min_improvement: float = Field(0.0, ge=-1.0, le=1.0)


class Approval(_Model):
    """A person approves each promotion the gate allows (Airflow's "Required actions"); with no
    answer within `timeout_hours`, the candidate is not promoted."""

    timeout_hours: float = Field(24.0, gt=0, le=24 * 30)


class Fairness(_Model):
    """Protected attributes: the model card reports each group's figures on the candidate's holdout
    and the largest gap between groups (include/training/fairness.py); with `max_gap`, a gap whose
    lower bound exceeds it fails the gate."""

    attributes: tuple[str, ...] = Field(min_length=1)
    max_gap: float | None = Field(None, gt=0)


class Gate(_Model):
    """What a candidate must show to replace the champion (include/training/gate.py).

    `floor` bounds a higher-is-better primary metric from below, `ceiling` a lower-is-better one
    (a loss) from above; the spec gives the one its primary metric needs (a loss's bound written as
    `floor`, as specs did before `ceiling` existed, is read as its ceiling).
    """

    primary: Literal[METRICS]  # type: ignore[valid-type]
    min_improvement: float = Field(0.0, ge=MIN_IMPROVEMENT_RANGE[0], le=MIN_IMPROVEMENT_RANGE[1])
    floor: float | None = None
    ceiling: float | None = None
    # Metric -> largest allowed fall against the champion (its upper confidence bound).
    guardrails: dict[Literal[METRICS], float] = {}  # type: ignore[valid-type]
    # One-sided confidence of the paired bootstrap bounds the gate judges (include/training/compare.py).
    confidence: float = Field(0.9, gt=0.5, lt=1)
    resamples: int = Field(1000, ge=100)
    # Columns whose values split the holdout into slices; a slice of at least `min_slice_rows`
    # rows whose primary metric falls by more than `slice_tolerance` fails the gate.
    slices: tuple[str, ...] = ()
    min_slice_rows: int = Field(100, ge=1)
    slice_tolerance: float = Field(0.05, ge=0)
    # Judge the candidate on matured days too (needs the spec's `outcomes`).
    backtest: Backtest | None = None
    # A person approves every promotion the gate allows (dags/train.py's `approve` task).
    approval: Approval | None = None
    # Protected attributes: their groups' figures on the model card, and a rule when `max_gap` is set.
    fairness: Fairness | None = None

    @model_validator(mode="after")
    def _bound_fits_the_primary(self) -> Gate:
        higher = direction(self.primary) > 0
        wanted = "floor" if higher else "ceiling"
        problems = []
        if self.floor is None and self.ceiling is None:
            side = "higher" if higher else "lower"
            problems.append((wanted, f"required: {self.primary} is {side}-is-better"))
        elif self.floor is not None and self.ceiling is not None:
            problems.append(("ceiling", "give `floor` or `ceiling`, not both"))
        elif higher and self.ceiling is not None:
            problems.append(("ceiling", f"not for {self.primary} (higher is better); give `floor`"))
        if problems:
            raise _keyed(problems)
        return self

    @property
    def bound(self) -> float:
        """The floor of a higher-is-better primary metric, the ceiling of a lower-is-better one."""
        return self.floor if self.floor is not None else self.ceiling  # type: ignore[return-value]


class Scoring(_Model):
    # Rows read, predicted and written at a time: peak memory follows this, not the partition's size.
    batch_rows: int = Field(20_000, ge=1)
    # The smallest scoring shard (a mapped task), in rows: the plan gives each worker on the score queue
    # a shard, more only while a shard's start-up stays a small share of it (`score.shard_count`), never
    # one under shard_rows rows nor more than the day's row groups. A demo day (~80 rows) is one shard.
    shard_rows: int = Field(250_000, gt=0)


class Drift(_Model):
    psi_warn: float = Field(0.1, gt=0)
    psi_alert: float = Field(0.25, gt=0)
    cooldown_days: int = Field(7, ge=0)
    # A retrain is asked for when one feature alerts on this many consecutive scored days.
    alert_days: int = Field(2, ge=1)
    # Chance that a day drawn from the training distribution gets any warn / any alert (split across
    # features): a feature is graded only beyond the PSI sampling noise reaches at the day's rows.
    false_alarm_rate: float = Field(0.05, gt=0, lt=1)
    false_alert_rate: float = Field(0.005, gt=0, lt=1)

    @model_validator(mode="after")
    def _alert_is_stricter(self) -> Drift:
        problems = []
        if self.psi_alert < self.psi_warn:
            problems.append(("psi_alert", f"must be at least psi_warn ({self.psi_warn})"))
        if self.false_alert_rate > self.false_alarm_rate:
            problems.append(
                ("false_alert_rate", f"must be at most false_alarm_rate ({self.false_alarm_rate})")
            )
        if problems:
            raise _keyed(problems)
        return self


class Outcomes(_Model):
    """Where the label arrives after the scored day, and how the realised performance is judged.

    `source` holds the entity id and the label column (under the label's own name), dated by the
    day the outcome was observed (its `date_column`, or the `{ds}` of its prefix). A scored day is
    judged once `maturity_days` have passed; each prediction takes its entity's earliest outcome
    observed on or after the scored day. The last `lookback_days` matured days are judged again on
    every run, so outcomes that arrive late still count. Decay: the primary metric's interval lies
    on the wrong side of the version's holdout figure on `decay_days` consecutive matured days.
    """

    source: Source
    maturity_days: int = Field(30, ge=0, le=MAX_WINDOW_DAYS)
    lookback_days: int = Field(30, ge=1, le=MAX_WINDOW_DAYS)
    decay_days: int = Field(3, ge=1, le=60)
    confidence: float = Field(0.9, gt=0.5, lt=1)
    resamples: int = Field(500, ge=100, le=10_000)


class UseCase(_Model):
    """One use case: its sources, schema, features, training, gate, scoring and drift settings."""

    name: str = Field(max_length=MAX_NAME_CHARS)
    description: str = ""
    owner: str = "ml-platform"
    entity_id: str
    task: Literal[TASKS] = "binary"  # type: ignore[valid-type]
    label: Label
    schedule: Schedule
    sources: tuple[Source, ...] = Field(min_length=1)
    columns: dict[str, Column]
    features: Features
    ingest: Ingest = Ingest()
    training: Training = Training()
    gate: Gate
    scoring: Scoring = Scoring()
    drift: Drift = Drift()
    outcomes: Outcomes | None = None

    @model_validator(mode="before")
    @classmethod
    def _task_defaults(cls, raw: Any) -> Any:
        """A gate with no `primary` and training with no `estimators` get their task's defaults."""
        if not isinstance(raw, dict) or raw.get("task", "binary") not in TASKS:
            return raw
        task = raw.get("task", "binary")
        if isinstance(raw.get("gate"), dict) and "primary" not in raw["gate"]:
            raw = {**raw, "gate": {**raw["gate"], "primary": DEFAULT_PRIMARY[task]}}
        training = raw.get("training", {})
        if isinstance(training, dict) and "estimators" not in training:
            raw = {**raw, "training": {**training, "estimators": DEFAULT_ESTIMATORS[task]}}
        return raw

    @field_validator("name")
    @classmethod
    def _name_is_identifier(cls, value: str) -> str:
        if not re.match(r"^[a-z][a-z0-9_]*$", value):
            raise ValueError("must be lower-case letters, digits and underscores")
        return value

    @model_validator(mode="after")
    def _names_resolve(self) -> UseCase:
        declared = set(self.columns)
        problems: list[tuple[str, str]] = []
        for key, names in (
            ("entity_id", [self.entity_id]),
            ("label.column", [self.label.column]),
            ("gate.slices", list(self.gate.slices)),
            *(
                (f"features.{kind}", getattr(self.features, kind))
                for kind in Features.model_fields
                if kind != "derived"
            ),
            ("features.derived", self.features.inputs),
        ):
            problems += [(key, f"{n!r} is not in `columns`") for n in names if n not in declared]
        provided: dict[str, str] = {}
        for source in self.sources:
            if self.entity_id not in source.columns:
                problems.append((f"sources.{source.name}", f"must provide the entity id {self.entity_id!r}"))
            for name in source.columns:
                if name not in declared:
                    problems.append((f"sources.{source.name}.columns", f"{name!r} is not in `columns`"))
                elif name != self.entity_id and name in provided:
                    problems.append(
                        (f"sources.{source.name}.columns", f"{name!r} also comes from {provided[name]!r}")
                    )
                provided.setdefault(name, source.name)
        problems += [(f"columns.{n}", "no source provides it") for n in declared if n not in provided]
        problems += _outcomes_problems(self)
        problems += _fairness_problems(self)
        problems += [
            ("features.derived", f"{name!r} reads {self.columns[name].type} column, not a number")
            for name in self.features.inputs
            if name in declared and self.columns[name].type not in ("integer", "float")
        ]
        problems += [
            ("features.derived", f"{name!r} is also a column")
            for name in self.features.derived
            if name in declared
        ]
        if self.label.column in self.features.all:
            problems.append(("features", f"the label {self.label.column!r} cannot be a feature"))
        if self.label.column in declared:
            problems += _label_problems(self.task, self.label, self.columns[self.label.column])
        problems += _metric_problems(self.task, self.gate)
        if self.task == "regression" and "logistic_regression" in self.training.estimators:
            problems.append(("training.estimators", "logistic_regression is a classifier; use linear"))
        if problems:
            raise _keyed(problems)
        return self

    @cached_property
    def ingest_dag_id(self) -> str:
        return f"{self.name}_ingest"

    @cached_property
    def train_dag_id(self) -> str:
        return f"{self.name}_train"

    @cached_property
    def score_dag_id(self) -> str:
        return f"{self.name}_score"

    @cached_property
    def evaluate_dag_id(self) -> str:
        return f"{self.name}_evaluate"

    def source(self, name: str) -> Source:
        """The source called `name`."""
        return next(s for s in self.sources if s.name == name)

    def with_run_params(self, params: Mapping[str, object]) -> UseCase:
        """The spec with a run's overrides (the training form's params), validated like the file."""
        training = {k: params[k] for k in RUN_OVERRIDES if params.get(k) not in (None, [])}
        gate = {} if params.get("min_improvement") is None else {"min_improvement": params["min_improvement"]}
        if not training and not gate:
            return self
        raw = self.model_dump()
        raw["training"].update(training)
        raw["gate"].update(gate)
        return UseCase.model_validate(raw)


def _metric_problems(task: str, gate: Gate) -> list[tuple[str, str]]:
    """The gate's metrics that are not the task's, and binary's rule that accuracy is gated."""
    known = TASK_METRICS[task]
    problems = [
        (key, f"{name!r} is not a {task} metric; one of {list(known)}")
        for key, name in (("gate.primary", gate.primary), *(("gate.guardrails", g) for g in gate.guardrails))
        if name not in known
    ]
    if task == "binary" and gate.primary != "accuracy" and "accuracy" not in gate.guardrails:
        problems.append(("gate.guardrails", "accuracy must be the primary metric or a guard-rail"))
    return problems


# Column types whose values make groups; a number or a time would make a group per value.
GROUP_TYPES = ("string", "integer", "boolean")


def _fairness_problems(spec: UseCase) -> list[tuple[str, str]]:
    """The protected attributes that are not declared columns of a type with groups, or repeat."""
    if spec.gate.fairness is None:
        return []
    key, names = "gate.fairness.attributes", spec.gate.fairness.attributes
    problems = [(key, f"{name!r} is not in `columns`") for name in names if name not in spec.columns]
    problems += [
        (key, f"{name!r} is a {kind} column; an attribute is {', '.join(GROUP_TYPES)}")
        for name in names
        if name in spec.columns and (kind := spec.columns[name].type) not in GROUP_TYPES
    ]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        problems.append((key, f"{', '.join(repeated)} named more than once"))
    return problems


def _outcomes_problems(spec: UseCase) -> list[tuple[str, str]]:
    """Why the outcomes source does not fit the spec, and a backtest without outcomes."""
    if spec.outcomes is None:
        if spec.gate.backtest is not None:
            return [("gate.backtest", "needs `outcomes`: the matured days' labels come from there")]
        return []
    source, wanted = spec.outcomes.source, (spec.entity_id, spec.label.column)
    problems = [
        ("outcomes.source.columns", f"must be the entity id and the label, {needed!r} is missing")
        for needed in wanted
        if needed not in source.columns
    ]
    problems += [
        ("outcomes.source.columns", f"{name!r} is neither the entity id nor the label")
        for name in source.columns
        if name not in wanted
    ]
    if source.name in {s.name for s in spec.sources}:
        problems.append(("outcomes.source.name", f"{source.name!r} is also a feature source"))
    return problems


def _label_problems(task: str, label: Label, column: Column) -> list[tuple[str, str]]:
    """Why the label does not fit the task or its column, if it does not: (key, message) pairs."""
    misplaced = [
        (f"label.{key}", f"is for a {needs} task, this one is {task}")
        for key, needs, given in (
            ("positive", "binary", label.positive is not None),
            ("one_vs_rest", "binary", label.one_vs_rest),
            ("classes", "multiclass", label.classes is not None),
            ("log_scale", "regression", label.log_scale),
        )
        if given and task != needs
    ]
    if misplaced:
        return misplaced
    if task == "regression":
        if column.type not in ("integer", "float"):
            return [
                (
                    "label.column",
                    f"{label.column!r} is a {column.type} column; a regression label is a number",
                )
            ]
        return []
    if task == "multiclass":
        return _classes_problems(label, column)
    if label.positive is None:
        return [("label.positive", "required for a binary task (or set `task: multiclass` or `regression`)")]
    return _positive_problems(label, column)


def _classes_problems(label: Label, column: Column) -> list[tuple[str, str]]:
    kind = LABEL_TYPES.get(column.type)
    if kind is None:
        kinds = ", ".join(LABEL_TYPES)
        return [("label.column", f"{label.column!r} is a {column.type} column; a class label is {kinds}")]
    if label.classes is None:
        return []
    problems = []
    if len(set(label.classes)) != len(label.classes) or len(label.classes) < 3:
        problems.append(("label.classes", "must be at least three distinct values (two: a binary task)"))
    wrong = [c for c in label.classes if type(c) is not kind]
    if wrong:
        problems.append(
            ("label.classes", f"{wrong} are not values of the {column.type} column {label.column!r}")
        )
    outside = [c for c in label.classes if column.allowed is not None and c not in column.allowed]
    if outside:
        problems.append(
            ("label.classes", f"{outside} are not among the allowed values {list(column.allowed)}")
        )
    return problems


def _positive_problems(label: Label, column: Column) -> list[tuple[str, str]]:
    """Why `label.positive` cannot be a value of its column, if it cannot: (key, message) pairs."""
    kind = LABEL_TYPES.get(column.type)
    if kind is None:
        kinds = ", ".join(LABEL_TYPES)
        return [("label.column", f"{label.column!r} is a {column.type} column; a label is {kinds}")]
    # bool is a subclass of int: `positive: true` is not a value of an integer column.
    if type(label.positive) is not kind:
        return [
            (
                "label.positive",
                f"{label.positive!r} is not a value of the {column.type} column {label.column!r} "
                f"(write it as the column holds it, e.g. {_example(column.type)})",
            )
        ]
    if column.allowed is not None and label.positive not in column.allowed:
        allowed = list(column.allowed)
        return [("label.positive", f"{label.positive!r} is not among the allowed values {allowed}")]
    if column.allowed is not None and len(set(column.allowed)) > 2 and not label.one_vs_rest:
        return [("label.positive", one_vs_rest_refusal(label, sorted(set(column.allowed), key=str)))]
    return []


def one_vs_rest_refusal(label: Label, values: list[object]) -> str:
    """Why a label of more than two values is refused without `one_vs_rest: true`."""
    return (
        f"the label {label.column!r} has {len(values)} values {values}: {label.positive!r} against the "
        "rest of them is a cut; set `label.one_vs_rest: true` to train it so"
    )


def _example(kind: str) -> str:
    return {"string": '"Yes"', "integer": "1", "boolean": "true"}[kind]


def _describe(error: ValidationError) -> str:
    """Every error of `error` after its dotted key (`training.window_days: ...`)."""
    lines = []
    for item in error.errors():
        where = [str(part) for part in item["loc"]]
        if item["type"] == _KEYED:
            lines += [f"{'.'.join([*where, key])}: {message}" for key, message in item["ctx"]["problems"]]
        else:
            lines.append(f"{'.'.join(where) or '(top level)'}: {item['msg']}")
    return "; ".join(lines)


def load_spec(path: Path | str, text: bytes | None = None) -> UseCase:
    """Read and validate one spec file (`text`: its content, when the caller has read it already).

    Raises:
        SpecError: naming the file and every bad key.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_bytes() if text is None else text)
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError(f"{path.name}: cannot read the spec: {exc}") from exc
    if not isinstance(raw, dict):
        raise SpecError(f"{path.name}: a spec is a mapping of keys, got {type(raw).__name__}")
    try:
        return UseCase.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(f"{path.name}: {_describe(exc)}") from exc


@dataclass(frozen=True)
class SpecFolder:
    """A folder's specs: the valid ones, and one error per file that cannot be used.

    A bad file fails its own DAGs only: the DAG files build the valid specs' DAGs, and
    `dags/spec_errors.py` raises `errors` as its import error, which Airflow shows. `files` names
    each valid spec's file, by use case.
    """

    specs: list[UseCase]
    errors: list[SpecError]
    files: dict[str, str]


def load_specs(folder: Path | str = SPEC_DIR) -> SpecFolder:
    """Every `*.yaml` spec in `folder`, sorted by file name; a name claimed twice is an error of both."""
    paths = sorted(Path(folder).glob("*.yaml"))
    loaded: dict[str, UseCase] = {}
    errors: list[SpecError] = []
    for path in paths:
        try:
            loaded[path.name] = load_spec(path)
        except SpecError as exc:
            log.error("%s", exc)
            errors.append(exc)
    files: dict[str, list[str]] = {}
    for file, spec in loaded.items():
        files.setdefault(spec.name, []).append(file)
    for name, claiming in files.items():
        if len(claiming) > 1:
            errors.append(
                SpecError(f"{', '.join(claiming)}: use case name {name!r} repeats across spec files")
            )
            for file in claiming:
                del loaded[file]
    return SpecFolder(list(loaded.values()), errors, {spec.name: file for file, spec in loaded.items()})


def spec_file(name: str, folder: Path | str = SPEC_DIR) -> Path:
    """The file whose spec says `name: <name>`, whatever it is called.

    Raises:
        SpecError: when no file, or more than one, claims the name.
    """
    claiming = [path for path in sorted(Path(folder).glob("*.yaml")) if _claimed_name(path) == name]
    if not claiming:
        raise SpecError(f"no use case named {name!r}: no spec file in {folder} has `name: {name}`")
    if len(claiming) > 1:
        raise SpecError(f"use case name {name!r} repeats in {', '.join(p.name for p in claiming)}")
    return claiming[0]


def get_spec(name: str, folder: Path | str = SPEC_DIR) -> UseCase:
    """The use case called `name`; only its own file is validated, so another file's error does not
    hide it.

    Raises:
        SpecError: when no file, or more than one, claims the name, or the one that does is invalid.
    """
    return load_spec(spec_file(name, folder))


def _claimed_name(path: Path) -> object:
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None
    return raw.get("name") if isinstance(raw, dict) else None
