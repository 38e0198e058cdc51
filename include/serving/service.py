"""The scoring service's state: the model served per use case, following the registry's champion.

A `Served` is immutable: a loaded, checksum-verified version with the scorer built for it. A request
takes the use case's current `Served` once and uses only it, so it is scored wholly by one version.
`refresh` (run every `poll_seconds` by a background thread) asks the registry for the champion; when
the alias has moved it loads and checks the new version off the request path, then replaces the
reference in one assignment. Requests in flight finish on the old model, later ones get the new one,
and none waits or fails while the swap happens.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from include.serving.champion import ChampionSource, ModelVersion, VersionDetail, VersionModel
from include.serving.fast import CompileError, check_against, compile_pipeline
from include.serving.rows import probe_rows, rows_to_frame
from include.serving.settings import Engine
from include.usecases.spec import UseCase

log = logging.getLogger(__name__)

Rows = Sequence[dict[str, Any]]


class UnknownUseCase(LookupError):
    """A use case the service does not serve."""


class NotServing(RuntimeError):
    """A known use case with no model to score with (no champion, or its file failed to load)."""


@dataclass(frozen=True)
class Served:
    """One loaded version of a use case's champion, its detail, and how its rows are scored."""

    model: VersionModel
    detail: VersionDetail
    engine: str
    scorer: Callable[[Rows], np.ndarray]
    promoted_at: dt.datetime | None
    served_since: dt.datetime

    @property
    def version(self) -> ModelVersion:
        return self.model.version


@dataclass(frozen=True)
class ScoredRequest:
    """A request's answers, with the version that produced every one of them.

    Attributes:
        outputs: per task (`FittedModel.outputs`): the positive class's probabilities, every class's
            probabilities (rows x classes), or the predicted values.
        labels: binary, 1 where the score reaches the version's threshold; multiclass, the index of
            the most probable class; regression, None.
        classes: a multiclass model's classes, in the order of `outputs`' columns.
    """

    version: ModelVersion
    outputs: np.ndarray
    labels: np.ndarray | None
    task: str = "binary"
    classes: tuple[object, ...] | None = None


@dataclass(frozen=True)
class State:
    """What a use case serves now (`served`), and why not or what went wrong last.

    `problem` is the whole story (an exception's text may name a file, a URL or a database), shown
    only behind the token; `reason` is its short form for the open `/health`, naming no path.
    """

    spec: UseCase
    served: Served | None = None
    problem: str | None = None
    reason: str | None = None


def build_served(
    spec: UseCase,
    model: VersionModel,
    detail: VersionDetail,
    engine: Engine,
    promoted_at: dt.datetime | None,
) -> Served:
    """The scorer for `model`: the fast path if asked (or `auto` and it matches), else the pipeline.

    Raises:
        CompileError: when `engine` is `fast` and the pipeline does not compile or match.
    """

    def pipeline_scores(rows: Rows) -> np.ndarray:
        return model.model.outputs(rows_to_frame(rows, spec))

    chosen, scorer, version = "sklearn", pipeline_scores, model.version.version
    if model.model.task != "binary":
        if engine == "fast":
            raise CompileError(f"the fast path scores binary models; {spec.name} is {model.model.task}")
        log.info("%s v%d: scikit-learn path (a %s model)", spec.name, version, model.model.task)
    elif engine != "sklearn":
        try:
            fast = compile_pipeline(model.model.pipeline)
            probes = probe_rows(spec)
            worst = check_against(fast, model.model.pipeline, rows_to_frame(probes, spec), probes)
            chosen, scorer = "fast", fast.predict_proba
            log.info("%s v%d: fast path, within %.2g of the pipeline", spec.name, version, worst)
        except CompileError as why:
            if engine == "fast":
                raise
            log.warning("%s v%d: scikit-learn path (%s)", spec.name, version, why)
    return Served(model, detail, chosen, scorer, promoted_at, dt.datetime.now(dt.UTC))


class ScoringService:
    """Every served use case's state, kept in step with the registry's champion alias."""

    def __init__(
        self,
        specs: Sequence[UseCase],
        source: ChampionSource,
        engine: Engine = "auto",
        poll_seconds: float = 5,
    ) -> None:
        self.source = source
        self.engine = engine
        self.poll_seconds = poll_seconds
        self._states: dict[str, State] = {
            spec.name: State(spec, problem="not loaded yet", reason="not loaded yet") for spec in specs
        }
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._refresh_lock = threading.Lock()

    @property
    def use_cases(self) -> list[str]:
        return sorted(self._states)

    def state(self, use_case: str) -> State:
        """The use case's state now.

        Raises:
            UnknownUseCase: for a use case the service does not serve.
        """
        try:
            return self._states[use_case]
        except KeyError:
            raise UnknownUseCase(f"no use case {use_case!r}; served: {self.use_cases}") from None

    def served(self, use_case: str) -> Served:
        """The model serving `use_case` now.

        Raises:
            UnknownUseCase: for a use case the service does not serve.
            NotServing: when it has no model (the reason says why).
        """
        return self.current(use_case)[0]

    def current(self, use_case: str) -> tuple[Served, str | None]:
        """The model serving `use_case` and the last problem following its alias, read together.

        Raises:
            UnknownUseCase: for a use case the service does not serve.
            NotServing: when it has no model (the reason says why).
        """
        state = self.state(use_case)
        if state.served is None:
            raise NotServing(f"{use_case}: {state.problem}")
        return state.served, state.problem

    def score(self, use_case: str, rows: Rows) -> ScoredRequest:
        """Scores and labels of validated `rows`, all from the one version serving at the call."""
        served = self.served(use_case)
        outputs = served.scorer(rows)
        fitted = served.model.model
        if fitted.task == "regression":
            return ScoredRequest(served.version, outputs, None, "regression")
        if fitted.task == "multiclass":
            return ScoredRequest(
                served.version, outputs, outputs.argmax(axis=1), "multiclass", fitted.classes
            )
        return ScoredRequest(served.version, outputs, served.model.labels(outputs))

    def refresh(self) -> None:
        """Follow the champion alias of every use case: load a moved champion and swap it in."""
        with self._refresh_lock:
            for name, state in list(self._states.items()):
                self._states[name] = self._refreshed(state)

    def _refreshed(self, state: State) -> State:
        name, served = state.spec.name, state.served
        try:
            found = self.source.champion(name)
        except Exception as exc:  # the registry being unreachable must not stop serving
            log.exception("%s: cannot read the champion alias", name)
            return State(state.spec, served, f"cannot read the registry: {exc}", "cannot read the registry")
        if found is None:
            if served is not None:
                log.warning(
                    "%s: the champion alias is gone; v%d no longer served", name, served.version.version
                )
            return State(
                state.spec,
                problem=f"no champion: no {name} model has passed the gate yet "
                f"(train one: trigger {state.spec.train_dag_id})",
                reason="no champion",
            )
        version, promoted_at = found
        if served is not None and (served.version.version, served.version.sha256) == (
            version.version,
            version.sha256,
        ):
            return state if state.problem is None else State(state.spec, served)
        started = time.perf_counter()
        try:
            model = self.source.load(version)
            detail = self.source.detail(state.spec, version)
            fresh = build_served(state.spec, model, detail, self.engine, promoted_at)
        except Exception as exc:  # a bad file keeps the model already verified and served
            log.exception("%s: champion v%d not loaded", name, version.version)
            failed = f"champion v{version.version} not loaded"
            return State(state.spec, served, f"{failed}: {exc}", failed)
        log.info(
            "%s: serving v%d (%s path, sha256 %s) in place of %s, loaded in %.2f s",
            name,
            version.version,
            fresh.engine,
            version.sha256[:12],
            f"v{served.version.version}" if served else "nothing",
            time.perf_counter() - started,
        )
        return State(state.spec, fresh)

    def start(self) -> None:
        """Load the champions now, then follow the alias every `poll_seconds` in a background thread."""
        self.refresh()
        self._stop.clear()
        self._watcher = threading.Thread(target=self._watch, name="champion-watcher", daemon=True)
        self._watcher.start()

    def stop(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=10)

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.refresh()
