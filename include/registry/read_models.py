"""What readers show of the registry, built once: a version's detail and a gate decision.

The CLI prints these models, the UI's JSON API serves them (and its pages render them), and the
scoring service's model route returns the served version's detail: one builder each, so the three
can never disagree on a figure or on which trial was chosen (recorded at registration,
`model_versions.chosen_trial`).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, Discriminator, Field, Tag

from include.registry.model_card import CardBlock, card_blocks, registry_card
from include.registry.registry import GateRecord, ModelVersion, Registry
from include.usecases.spec import UseCase, direction


class RocPoints(BaseModel):
    fpr: list[float]
    tpr: list[float]


class PrPoints(BaseModel):
    recall: list[float]
    precision: list[float]


class Confusion(BaseModel):
    tn: int
    fp: int
    fn: int
    tp: int


class Curves(BaseModel):
    """A binary model's holdout curves and its confusion matrix at `threshold` (stored, never
    recomputed)."""

    kind: Literal["binary"] = "binary"
    roc: RocPoints
    pr: PrPoints
    confusion: Confusion
    threshold: float
    rows: int


class Points(BaseModel):
    actual: list[float]
    predicted: list[float]

    @property
    def residuals(self) -> list[float]:
        """Each point's residual, actual − predicted."""
        return [a - p for a, p in zip(self.actual, self.predicted, strict=True)]


class Histogram(BaseModel):
    edges: list[float]
    counts: list[int]


class Calibration(BaseModel):
    """The mean label and the mean prediction in each tenth of the predictions."""

    predicted: list[float]
    actual: list[float]
    rows: list[int]


class RegressionCurves(BaseModel):
    """A regression model's holdout: predicted against actual, the residuals, the calibration."""

    kind: Literal["regression"]
    rows: int
    points: Points
    residuals: Histogram
    calibration: Calibration


class ClassFigures(BaseModel):
    name: str
    precision: float
    recall: float
    f1: float
    rows: int


class ConfusionMatrix(BaseModel):
    counts: list[list[int]]
    normalised: list[list[float]]


class MulticlassCurves(BaseModel):
    """A multiclass model's holdout: the confusion matrix, the per-class table, one-vs-rest ROC."""

    kind: Literal["multiclass"]
    rows: int
    classes: list[str]
    confusion: ConfusionMatrix
    per_class: list[ClassFigures]
    roc: dict[str, RocPoints]


def _kind(value: Any) -> str:
    """A stored picture's task: its `kind`, binary when absent (stored before other tasks)."""
    return value.get("kind", "binary") if isinstance(value, dict) else value.kind


TaskCurves = Annotated[
    Annotated[Curves, Tag("binary")]
    | Annotated[RegressionCurves, Tag("regression")]
    | Annotated[MulticlassCurves, Tag("multiclass")],
    Discriminator(_kind),
]


class HoldoutMetric(BaseModel):
    """One holdout metric of a version, with its bounds at the gate's confidence once judged."""

    metric: str
    value: float
    lower: float | None
    upper: float | None


class TrialRow(BaseModel):
    """One cross-validation trial: the family, its parameters, the CV mean and spread."""

    trial_id: str
    family: str
    params: dict[str, Any]
    metric: str
    cv_mean: float
    cv_std: float
    threshold: float
    duration_seconds: float
    chosen: bool


class FeatureImportance(BaseModel):
    feature: str
    derived: bool
    # A `<name>_missing` column: whether the feature was missing (imputed) on the row.
    indicator: bool = False
    mean: float
    std: float


class Importance(BaseModel):
    """Permutation importance on the holdout, stored at training: the fall of `metric` per feature."""

    metric: str
    n_repeats: int
    rows: int
    features: list[FeatureImportance]


class Lineage(BaseModel):
    """Where a version comes from: its Airflow run, code, libraries, data fingerprint and file."""

    dag_id: str
    run_id: str
    run_path: str
    code_version: str
    library_versions: dict[str, str]
    fingerprint: str | None
    artifact_uri: str
    sha256: str


class MetricRow(BaseModel):
    """One metric of a gate decision: both models on the same holdout, and which is better."""

    metric: str
    candidate: float | None
    champion: float | None
    difference: float | None
    candidate_better: bool | None
    # The paired gain (+: candidate better, whatever the metric's direction) and its bounds at the
    # gate's confidence, for the metrics the gate judged.
    gain: float | None = None
    gain_lower: float | None = None
    gain_upper: float | None = None


class SliceRow(BaseModel):
    """The primary metric's paired gain on one slice of the holdout, with its bounds."""

    column: str
    value: str
    rows: int
    gain: float | None
    lower: float | None
    upper: float | None


class BacktestDayRow(BaseModel):
    """One matured day of a backtest: rows with an outcome, each model's primary metric."""

    ds: dt.date
    rows: int
    candidate: float | None
    champion: float | None


class BacktestRow(BaseModel):
    """The gate's backtest: its days, each day's figures, the pooled paired gain with its bounds."""

    first: dt.date
    last: dt.date
    days: list[BacktestDayRow]
    gain: float | None
    lower: float | None
    upper: float | None


class DecisionDetail(BaseModel):
    """A stored gate decision: the rules' outcome, both models' metrics side by side, the slices,
    the backtest on matured days (when the spec asks for one)."""

    candidate_version: int
    champion_version: int | None
    ds: dt.date
    run_id: str
    passed: bool
    reasons: list[str]
    confidence: float | None
    metrics: list[MetricRow]
    slices: list[SliceRow]
    backtest: BacktestRow | None = None
    decided_at: dt.datetime | None


class VersionDetail(BaseModel):
    """One version in full: what it is, what it was trained on, how it was judged, what it relies on."""

    use_case: str
    version: int
    status: str
    status_reason: str | None
    family: str
    params: dict[str, Any]
    trained_as_of: dt.date
    window: tuple[dt.date, dt.date]
    holdout: tuple[dt.date, dt.date]
    rows: dict[str, int] | None
    threshold: float
    metrics: list[HoldoutMetric]
    cv_metrics: dict[str, float]
    curves: TaskCurves | None
    decision: DecisionDetail | None
    champion_curves: TaskCurves | None
    chosen_trial: str | None
    trials: list[TrialRow]
    importance: Importance | None
    lineage: Lineage
    # Where the training DAG stores the version's model card in the lake, and the card as the
    # registry's facts give it now (`include.registry.model_card`) for the page. The card is left out
    # of the JSON: the scoring service builds its detail without the spec, and every reader's JSON
    # must be the same.
    card_key: str
    card: str | None = Field(None, exclude=True)

    @property
    def card_blocks(self) -> list[CardBlock]:
        """The card's headings, paragraphs, lists and tables, for a page to render."""
        return card_blocks(self.card or "")


def version_detail(registry: Registry, spec: UseCase, version: int) -> VersionDetail:
    """The detail of the use case's `version`, with its gate decision if it has one.

    Raises:
        LookupError: naming the use case and its known versions, when it has no such version.
    """
    found = registry.get(spec.name, version)
    record = registry.decision(spec.name, version)
    card = registry_card(registry, spec, found, record)
    return describe(found, record, spec.train_dag_id).model_copy(update={"card": card})


def describe(found: ModelVersion, record: GateRecord | None, train_dag_id: str) -> VersionDetail:
    """`found`'s detail, judged by `record` (None: not judged yet); `train_dag_id` made it."""
    from include.io.lake import card_key

    levels = ((record.evidence if record else None) or {}).get("levels", {})
    return VersionDetail(
        use_case=found.use_case,
        version=found.version,
        status=found.status,
        status_reason=found.status_reason,
        family=found.family,
        params=found.params,
        trained_as_of=found.ds,
        window=(found.window_start, found.window_end),
        holdout=(found.holdout_start, found.holdout_end),
        rows=found.row_counts,
        threshold=found.threshold,
        metrics=[
            HoldoutMetric(
                metric=name,
                value=value,
                lower=levels.get(name, {}).get("lower"),
                upper=levels.get(name, {}).get("upper"),
            )
            for name, value in found.metrics.items()
        ],
        cv_metrics=found.cv_metrics,
        curves=found.curves,
        decision=None if record is None else decision_detail(record),
        champion_curves=None if record is None else record.champion_curves,
        chosen_trial=found.chosen_trial,
        trials=[_trial(t, t["trial"]["trial_id"] == found.chosen_trial) for t in found.trials],
        importance=found.importance,
        lineage=Lineage(
            dag_id=train_dag_id,
            run_id=found.run_id,
            run_path=f"/dags/{train_dag_id}/runs/{quote(found.run_id, safe='')}",
            code_version=found.code_version,
            library_versions=found.library_versions,
            fingerprint=found.fingerprint,
            artifact_uri=found.artifact_uri,
            sha256=found.sha256,
        ),
        card_key=card_key(found.use_case, found.version),
    )


def _trial(result: dict[str, Any], chosen: bool) -> TrialRow:
    return TrialRow(
        trial_id=result["trial"]["trial_id"],
        family=result["trial"]["family"],
        params=result["trial"]["params"],
        metric=result["primary"],
        cv_mean=result["primary_mean"],
        cv_std=result["primary_std"],
        threshold=result["threshold"],
        duration_seconds=result["duration_seconds"],
        chosen=chosen,
    )


def decision_detail(record: GateRecord) -> DecisionDetail:
    """A stored decision with each metric's candidate, champion, difference and paired gain."""
    champion = record.champion_metrics or {}
    evidence = record.evidence or {}
    gains = evidence.get("differences", {})
    metrics = []
    for name, value in record.candidate_metrics.items():
        other = champion.get(name)
        difference = None if other is None else value - other
        gain = gains.get(name, {})
        metrics.append(
            MetricRow(
                metric=name,
                candidate=value,
                champion=other,
                difference=difference,
                candidate_better=None if not difference else difference * direction(name) > 0,
                gain=gain.get("estimate"),
                gain_lower=gain.get("lower"),
                gain_upper=gain.get("upper"),
            )
        )
    slices = [
        SliceRow(
            column=s["column"],
            value=s["value"],
            rows=s["rows"],
            gain=s["estimate"],
            lower=s["lower"],
            upper=s["upper"],
        )
        for s in evidence.get("slices", [])
    ]
    return DecisionDetail(
        candidate_version=record.candidate_version,
        champion_version=record.champion_version,
        ds=record.ds,
        run_id=record.run_id,
        passed=record.passed,
        reasons=record.reasons,
        confidence=record.confidence,
        metrics=metrics,
        slices=slices,
        backtest=_backtest_row(evidence.get("backtest")),
        decided_at=record.decided_at,
    )


def _backtest_row(stored: dict[str, Any] | None) -> BacktestRow | None:
    """A stored backtest (`include.training.backtest.Backtest.to_dict`) as its read model."""
    if stored is None:
        return None
    gain = stored.get("gain") or {}
    return BacktestRow(
        first=stored["first"],
        last=stored["last"],
        days=[BacktestDayRow(**day) for day in stored["days"]],
        gain=gain.get("estimate"),
        lower=gain.get("lower"),
        upper=gain.get("upper"),
    )
