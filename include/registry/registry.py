"""The model registry: numbered versions, the `champion` alias, gate decisions, champion history.

The alias moves by compare-and-swap in one transaction: the move names the champion it expects to
replace, and it happens only if that is still the champion and the candidate is not older than it.
Two runs can therefore never both promote, and a backfilled training run never demotes a newer
champion. `champion_as_of` answers "which model was champion for day ds", for point-in-time scoring.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from include.platform.day_swap import replace_rows
from include.platform.queries import row_as
from include.platform.tables import (
    champion_history,
    gate_decisions,
    model_aliases,
    model_versions,
    training_runs,
)

if TYPE_CHECKING:
    from include.training.gate import GateDecision

log = logging.getLogger(__name__)

CHAMPION = "champion"
# model_versions.version is a 32-bit integer in every platform database.
MAX_VERSION = 2**31 - 1
OLDER_THAN_CHAMPION = "not promoted: older than champion"


@dataclass(frozen=True)
class NewVersion:
    """What a training run hands to the registry."""

    use_case: str
    run_id: str
    ds: dt.date
    window_start: dt.date
    window_end: dt.date
    holdout_start: dt.date
    holdout_end: dt.date
    family: str
    params: dict[str, Any]
    threshold: float
    metrics: dict[str, float]
    cv_metrics: dict[str, float]
    trials: list[dict[str, Any]]
    reference: dict[str, Any] | None
    library_versions: dict[str, str]
    code_version: str
    artifact_uri: str
    sha256: str
    fingerprint: str | None = None
    curves: dict[str, Any] | None = None
    importance: dict[str, Any] | None = None
    row_counts: dict[str, int] | None = None
    chosen_trial: str | None = None


@dataclass(frozen=True)
class ModelVersion(NewVersion):
    """A registered version, with its number and status."""

    version: int = 0
    status: str = "candidate"
    status_reason: str | None = None
    created_at: dt.datetime | None = None

    def summary(self) -> dict[str, Any]:
        """The small, JSON-able facts (for XCom, the CLI and logs)."""
        keep = ("use_case", "version", "ds", "family", "status", "status_reason", "sha256", "artifact_uri")
        facts = {k: getattr(self, k) for k in keep}
        facts["ds"] = self.ds.isoformat()
        facts["metrics"] = self.metrics
        return facts


@dataclass(frozen=True)
class GateRecord:
    """A stored gate decision: the candidate and the champion it was judged against, side by side."""

    use_case: str
    candidate_version: int
    champion_version: int | None
    ds: dt.date
    run_id: str
    passed: bool
    reasons: list[str]
    candidate_metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    confidence: float | None = None
    difference: float | None = None
    difference_lower: float | None = None
    difference_upper: float | None = None
    evidence: dict[str, Any] | None = None
    decided_at: dt.datetime | None = None
    champion_curves: dict[str, Any] | None = None


@dataclass(frozen=True)
class ChampionChange:
    """One move of the `champion` alias (an entry of the audit trail): the version, the first day it
    scores, the one it replaced, and who moved it, how (`gate`, `promote`, `rollback`) and why."""

    use_case: str
    entry: int
    version: int
    ds: dt.date
    previous_version: int | None
    promoted_at: dt.datetime | None
    kind: str
    actor: str
    reason: str


# How the champion may be moved by hand (`move_champion`).
MANUAL_MOVES = ("promote", "rollback")


@dataclass(frozen=True)
class TrainingRun:
    """One training run and its outcome: a new version `registered`, or an `unchanged` one found."""

    use_case: str
    run_id: str
    ds: dt.date
    version: int
    outcome: str
    fingerprint: str
    recorded_at: dt.datetime | None = None
    window_coverage: dict[str, Any] | None = None


@dataclass(frozen=True)
class Promotion:
    promoted: bool
    reason: str
    previous_version: int | None


@dataclass(frozen=True)
class ChampionMove:
    """What an entry of the audit trail records of one move (beside its use case and number)."""

    version: int
    ds: dt.date
    previous_version: int | None
    kind: str
    actor: str
    reason: str


def _record_move(conn: sa.Connection, use_case: str, move: ChampionMove) -> int:
    """Append the move to the use case's audit trail, inside the move's transaction; its entry."""
    which = champion_history.c.use_case == use_case
    last = conn.execute(sa.select(sa.func.max(champion_history.c.entry)).where(which)).scalar() or 0
    conn.execute(champion_history.insert().values(use_case=use_case, entry=last + 1, **asdict(move)))
    return last + 1


def _key(use_case: str, version: int):
    return (model_versions.c.use_case == use_case) & (model_versions.c.version == version)


def _champion_alias(use_case: str):
    return (model_aliases.c.use_case == use_case) & (model_aliases.c.alias == CHAMPION)


class Registry:
    """The registry on a SQLAlchemy engine (SQLite or PostgreSQL)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def register(self, new: NewVersion) -> ModelVersion:
        """Add a candidate version; a rerun of the same training run updates its version in place."""
        values = asdict(new)
        for attempt in range(5):
            try:
                with self.engine.begin() as conn:
                    key = (model_versions.c.use_case == new.use_case) & (
                        model_versions.c.run_id == new.run_id
                    )
                    existing = conn.execute(sa.select(model_versions.c.version).where(key)).scalar()
                    if existing is not None:
                        conn.execute(model_versions.update().where(key).values(**values))
                        version = existing
                    else:
                        latest = conn.execute(
                            sa.select(sa.func.max(model_versions.c.version)).where(
                                model_versions.c.use_case == new.use_case
                            )
                        ).scalar()
                        version = (latest or 0) + 1
                        conn.execute(
                            model_versions.insert().values(**values, version=version, status="candidate")
                        )
                return self.get(new.use_case, version)
            except sa.exc.IntegrityError:
                # Another run took the same number first: take the next one.
                log.info("version number taken, retrying (attempt %d)", attempt + 1)
        raise RuntimeError(f"could not allocate a version number for {new.use_case}")

    def with_fingerprint(self, use_case: str, fingerprint: str) -> ModelVersion | None:
        """The oldest version whose window content, code, libraries and search were `fingerprint`."""
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    sa.select(model_versions)
                    .where(model_versions.c.use_case == use_case, model_versions.c.fingerprint == fingerprint)
                    .order_by(model_versions.c.version)
                    .limit(1)
                )
                .mappings()
                .first()
            )
        return None if row is None else row_as(ModelVersion, row)

    def record_training_run(self, run: TrainingRun) -> None:
        """Store what a training run did (replacing the record of an earlier try of the same run)."""
        row = {k: v for k, v in asdict(run).items() if k != "recorded_at"}
        with self.engine.begin() as conn:
            replace_rows(conn, training_runs, {"use_case": run.use_case, "run_id": run.run_id}, [row])

    def training_runs(self, use_case: str) -> list[TrainingRun]:
        """Every training run of the use case, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(training_runs)
                .where(training_runs.c.use_case == use_case)
                .order_by(training_runs.c.recorded_at, training_runs.c.run_id)
            ).mappings()
            return [row_as(TrainingRun, r) for r in rows]

    def get(self, use_case: str, version: int) -> ModelVersion:
        """One version.

        Raises:
            LookupError: naming the use case and its known versions, when it has no such version.
        """
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(model_versions).where(_key(use_case, version))).mappings().first()
            if row is None:
                known = conn.execute(
                    sa.select(model_versions.c.version)
                    .where(model_versions.c.use_case == use_case)
                    .order_by(model_versions.c.version)
                ).scalars()
                listed = ", ".join(f"v{n}" for n in known) or "none registered"
                raise LookupError(f"{use_case}: no model version {version} (known versions: {listed})")
        return row_as(ModelVersion, row)

    def versions(self, use_case: str) -> list[ModelVersion]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(model_versions)
                .where(model_versions.c.use_case == use_case)
                .order_by(model_versions.c.version)
            ).mappings()
            return [row_as(ModelVersion, r) for r in rows]

    def champion(self, use_case: str) -> ModelVersion | None:
        """The version the `champion` alias points to now."""
        with self.engine.connect() as conn:
            version = conn.execute(
                sa.select(model_aliases.c.version).where(_champion_alias(use_case))
            ).scalar()
        return None if version is None else self.get(use_case, version)

    def champion_as_of(self, use_case: str, ds: dt.date) -> ModelVersion | None:
        """The champion for scoring day `ds`: the newest promoted version trained as of `ds` or before."""
        with self.engine.connect() as conn:
            version = conn.execute(
                sa.select(champion_history.c.version)
                .where((champion_history.c.use_case == use_case) & (champion_history.c.ds <= ds))
                .order_by(champion_history.c.ds.desc(), champion_history.c.entry.desc())
                .limit(1)
            ).scalar()
        return None if version is None else self.get(use_case, version)

    def set_status(self, use_case: str, version: int, status: str, reason: str | None = None) -> None:
        with self.engine.begin() as conn:
            self._set(conn, use_case, version, status, reason)

    def record_decision(
        self,
        candidate: ModelVersion,
        champion: ModelVersion | None,
        decision: GateDecision,
        champion_curves: dict[str, Any] | None = None,
    ) -> None:
        """Store the gate's decision (replacing an earlier one for the same candidate).

        The primary metric's paired difference and its bounds get their own columns (none without a
        champion); every bound the gate judged is kept in `evidence`. `champion_curves` are the
        champion's curves on the candidate's holdout, for the UI page.
        """
        data = decision.to_dict()
        primary = decision.differences.get(decision.primary or "")
        passed, reasons = decision.passed, list(decision.reasons)
        row = {
            "use_case": candidate.use_case,
            "candidate_version": candidate.version,
            "champion_version": champion.version if champion else None,
            "ds": candidate.ds,
            "run_id": candidate.run_id,
            "passed": passed,
            "reasons": reasons,
            "candidate_metrics": candidate.metrics,
            "champion_metrics": data["champion"],
            "confidence": primary and primary.confidence,
            "difference": primary and primary.estimate,
            "difference_lower": primary and primary.lower,
            "difference_upper": primary and primary.upper,
            "evidence": {k: data[k] for k in ("levels", "differences", "slices", "backtest", "fairness")},
            "champion_curves": champion_curves,
        }
        key = {"use_case": candidate.use_case, "candidate_version": candidate.version}
        with self.engine.begin() as conn:
            replace_rows(conn, gate_decisions, key, [row])
            if not passed:
                self._set(conn, candidate.use_case, candidate.version, "rejected", "; ".join(reasons))

    def decision(self, use_case: str, candidate_version: int) -> GateRecord | None:
        """The gate's decision on a candidate, if it has been judged."""
        decisions = self.decisions(use_case, gate_decisions.c.candidate_version == candidate_version)
        return decisions[0] if decisions else None

    def decisions(self, use_case: str, *where: sa.ColumnElement[bool]) -> list[GateRecord]:
        """Every gate decision of the use case, by candidate version."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(gate_decisions)
                .where(gate_decisions.c.use_case == use_case, *where)
                .order_by(gate_decisions.c.candidate_version)
            ).mappings()
            return [row_as(GateRecord, r) for r in rows]

    def champion_history(self, use_case: str) -> list[ChampionChange]:
        """Every move of the champion alias, oldest first (the audit trail)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(champion_history)
                .where(champion_history.c.use_case == use_case)
                .order_by(champion_history.c.entry)
            ).mappings()
            return [row_as(ChampionChange, r) for r in rows]

    def promote(
        self,
        use_case: str,
        version: int,
        expected: int | None,
        actor: str = "platform",
        reason: str = "passed the gate",
        kind: str = "gate",
    ) -> Promotion:
        """Move `champion` to `version` if the champion is still `expected` and not newer; the move
        is recorded in the audit trail as `kind` (the gate's, or an `approval`), by `actor` (the DAG
        run, or the person who approved), for `reason`.

        One transaction: the alias, both versions' statuses and the champion history move together
        or not at all. Promoting the current champion again is a no-op that reports success.
        """
        candidate = self.get(use_case, version)
        current = self.champion(use_case)
        if current is not None and current.version == version:
            return Promotion(True, "already champion", None)
        alias = _champion_alias(use_case)
        try:
            with self.engine.begin() as conn:
                if expected is None:
                    conn.execute(
                        model_aliases.insert().values(
                            use_case=use_case, alias=CHAMPION, version=version, ds=candidate.ds
                        )
                    )
                else:
                    moved = conn.execute(
                        model_aliases.update()
                        .where(
                            alias
                            & (model_aliases.c.version == expected)
                            & (model_aliases.c.ds <= candidate.ds)
                        )
                        .values(version=version, ds=candidate.ds, moved_at=sa.func.now())
                    )
                    if moved.rowcount != 1:
                        raise _NotMoved(self._why_not(conn, alias, expected, candidate))
                    self._set(conn, use_case, expected, "retired", f"replaced by v{version}")
                self._set(conn, use_case, version, "champion", None)
                move = ChampionMove(version, candidate.ds, expected, kind, actor, reason)
                _record_move(conn, use_case, move)
        except sa.exc.IntegrityError:
            return Promotion(False, "not promoted: another run promoted a champion first", expected)
        except _NotMoved as why:
            return Promotion(False, str(why), expected)
        log.info("%s: champion v%s -> v%s", use_case, expected, version)
        return Promotion(
            True, f"champion v{expected} -> v{version}" if expected else "first champion", expected
        )

    def move_champion(
        self,
        use_case: str,
        version: int,
        *,
        kind: str,
        actor: str,
        reason: str,
        ds: dt.date | None = None,
        force: bool = False,
    ) -> ChampionChange:
        """Move the champion by hand to `version` from scoring day `ds` on (default: today, UTC: a
        person's move holds from when it is made), a promotion or a rollback to an earlier champion,
        recording who and why; the past entries stay as they are.

        Only a version that passed its gate or was champion before may be chosen, unless `force`;
        `ds` may not come before the current champion's first day (that would rewrite which model
        scored a past day), nor before the version was trained.

        Raises:
            ValueError: naming the rule a move breaks (an unknown kind, an empty reason, a version
                that may not be chosen, a day in the past of the trail, the version already champion).
            LookupError: for an unknown version.
        """
        if kind not in MANUAL_MOVES:
            raise ValueError(f"kind: {kind!r} is not one of {MANUAL_MOVES}")
        if not reason.strip():
            raise ValueError("reason: required, it is kept in the audit trail")
        ds = ds or dt.datetime.now(dt.UTC).date()
        chosen = self.get(use_case, version)
        history = self.champion_history(use_case)
        decision = self.decision(use_case, version)
        eligible = (decision is not None and decision.passed) or any(c.version == version for c in history)
        if not eligible and not force:
            raise ValueError(
                f"v{version} neither passed its gate nor was champion before; force it (with a reason) "
                "to choose it anyway"
            )
        if ds < chosen.ds:
            raise ValueError(f"ds: {ds} is before v{version} was trained ({chosen.ds})")
        with self.engine.begin() as conn:
            alias = _champion_alias(use_case)
            current = conn.execute(
                sa.select(model_aliases.c.version, model_aliases.c.ds).where(alias)
            ).first()
            if current is not None and current.version == version:
                raise ValueError(f"v{version} is already the champion")
            if current is not None and ds < current.ds:
                raise ValueError(
                    f"ds: {ds} is before the current champion v{current.version}'s first day ({current.ds}); "
                    "a move holds from a day on, it never rewrites a past day"
                )
            if current is None:
                conn.execute(
                    model_aliases.insert().values(use_case=use_case, alias=CHAMPION, version=version, ds=ds)
                )
            else:
                conn.execute(
                    model_aliases.update()
                    .where(alias & (model_aliases.c.version == current.version))
                    .values(version=version, ds=ds, moved_at=sa.func.now())
                )
                self._set(
                    conn, use_case, current.version, "retired", f"{kind} to v{version} by {actor}: {reason}"
                )
            self._set(conn, use_case, version, "champion", None)
            move = ChampionMove(
                version,
                ds,
                current and current.version,
                kind,
                actor,
                reason + (" (forced)" if force and not eligible else ""),
            )
            entry = _record_move(conn, use_case, move)
        log.info("%s: %s v%s -> v%s by %s: %s", use_case, kind, move.previous_version, version, actor, reason)
        return next(c for c in self.champion_history(use_case) if c.entry == entry)

    @staticmethod
    def _why_not(conn: sa.Connection, alias, expected: int, candidate: ModelVersion) -> str:
        row = conn.execute(sa.select(model_aliases.c.version, model_aliases.c.ds).where(alias)).first()
        if row is None or row.version != expected:
            now = "none" if row is None else f"v{row.version}"
            return f"not promoted: the champion changed from v{expected} to {now} meanwhile"
        return f"{OLDER_THAN_CHAMPION} (trained as of {candidate.ds}, champion as of {row.ds})"

    @staticmethod
    def _set(conn: sa.Connection, use_case: str, version: int, status: str, reason: str | None) -> None:
        conn.execute(
            model_versions.update().where(_key(use_case, version)).values(status=status, status_reason=reason)
        )


class _NotMoved(Exception):
    """The compare-and-swap found a different or newer champion."""
