"""The platform's command line, for people and scripts: a printer over the shared read queries.

    python -m include.cli models churn [--json]    versions, status, aliases, ds, primary metric, sha256
    python -m include.cli models churn --version N [--json]
                                                   one version: family, parameters, holdout metrics with
                                                   the gate's bounds, data window, every trial, and the
                                                   permutation importance of each feature
    python -m include.cli gate churn [--json]      gate decisions: both sides' metrics, the paired gain
                                                   with its confidence bounds, and the reason
    python -m include.cli runs churn [--json]      ingest run records: rows read, quarantined, written
    python -m include.cli trainings churn [--json] training runs, and the version each registered or reused
    python -m include.cli predictions churn [--ds D] [--json]
                                                   scored days: rows, model version, score distribution
    python -m include.cli drift churn [--ds D] [--json]
                                                   drift per day (worst feature), or per feature of a day
    python -m include.cli performance churn [--json] realised performance per matured scored day (outcomes)
    python -m include.cli champions churn [--json]   the audit trail: every move of the champion, by whom, why
    python -m include.cli promote churn --version N --reason WHY [--force] [--ds D]
    python -m include.cli rollback churn [--version N] --reason WHY [--ds D]
                                                   move the champion by hand (a new audit entry)
    python -m include.cli db upgrade|current       the platform tables' schema (Alembic migrations)

It reads the platform's tables through the `platform_db` connection (`PLATFORM_DB_CONN_ID`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from include.config import Settings
from include.partition import parse_ds
from include.usecases.spec import get_spec

if TYPE_CHECKING:
    from include.registry.read_models import VersionDetail

Rows = list[dict[str, Any]]


def _engine():
    from include.platform.schema import platform_engine

    return platform_engine(Settings.from_env().platform_db_conn_id)


def _registry():
    from include.registry.registry import Registry

    return Registry(_engine())


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "-" if value is None else str(value)


def format_table(rows: Rows, columns: list[str]) -> str:
    cells = [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def models(use_case: str) -> Rows:
    """Every registered version, oldest first."""
    primary = get_spec(use_case, Settings.from_env().spec_dir).gate.primary
    registry = _registry()
    champion = registry.champion(use_case)
    return [
        {
            "version": v.version,
            "status": v.status,
            "aliases": "champion" if champion and champion.version == v.version else "",
            "ds": v.ds.isoformat(),
            "family": v.family,
            primary: v.metrics.get(primary),
            "accuracy": v.metrics.get("accuracy"),
            "threshold": v.threshold,
            "sha256": v.sha256,
            "reason": v.status_reason,
        }
        for v in registry.versions(use_case)
    ]


def version_detail(use_case: str, version: int) -> VersionDetail:
    """One version: what it is, what it was trained on, how it was judged and what it relies on.

    Raises:
        LookupError: naming the use case and its known versions, when it has no such version.
    """
    from include.registry.read_models import version_detail as detail_of

    return detail_of(_registry(), get_spec(use_case, Settings.from_env().spec_dir), version)


def version_text(detail: VersionDetail) -> str:
    """`version_detail` for people: a heading, the windows, then the metrics, trials and importance."""

    def count(key: str) -> str:
        return f", {detail.rows[key]:,} rows" if detail.rows else ""

    def bounds(low: float | None, high: float | None, sign: str = "") -> str:
        return "" if low is None or high is None else f"[{low:{sign}.4f}, {high:{sign}.4f}]"

    decision = detail.decision
    binary = detail.curves is None or detail.curves.kind == "binary"
    threshold = f"; threshold {detail.threshold:.4f}" if binary else ""
    lines = [
        f"{detail.use_case} v{detail.version}: {detail.status}, {detail.family}, "
        f"trained as of {detail.trained_as_of}",
        *([f"reason: {detail.status_reason}"] if detail.status_reason else []),
        f"parameters: {json.dumps(detail.params, sort_keys=True)}",
        f"data window {detail.window[0]} .. {detail.window[1]}{count('train')} for training; "
        f"holdout {detail.holdout[0]} .. {detail.holdout[1]}{count('holdout')}{threshold}",
        "",
    ]
    if decision is None:
        lines += ["holdout metrics (not judged by the gate yet)"]
    else:
        against = f"v{decision.champion_version}" if decision.champion_version else "no champion"
        level = f"{decision.confidence:.0%} bounds" if decision.confidence else "no bounds stored"
        lines += [
            f"holdout metrics; gate: {'passed' if decision.passed else 'rejected'} against {against}, {level}"
        ]
    gains = {row.metric: row for row in decision.metrics} if decision else {}
    metrics = []
    for m in detail.metrics:
        gain = gains.get(m.metric)
        metrics.append(
            {
                "metric": m.metric,
                "value": m.value,
                "bounds": bounds(m.lower, m.upper),
                "gain": "" if gain is None or gain.gain is None else f"{gain.gain:+.4f}",
                "gain bounds": "" if gain is None else bounds(gain.gain_lower, gain.gain_upper, "+"),
            }
        )
    lines += [format_table(metrics, list(metrics[0])) if metrics else "none", "", *task_pictures_text(detail)]
    if decision:
        lines += ["gate reasons:", *(f"  {reason}" for reason in decision.reasons), ""]
    trials = [
        {
            "trial": t.trial_id + (" (chosen)" if t.chosen else ""),
            "family": t.family,
            "parameters": json.dumps(t.params, sort_keys=True),
            f"CV {t.metric} mean ± std": f"{t.cv_mean:.4f} ± {t.cv_std:.4f}",
        }
        for t in detail.trials
    ]
    lines += [f"trials ({len(trials)})", format_table(trials, list(trials[0])) if trials else "none", ""]
    importance = detail.importance
    if importance is None:
        lines += ["permutation importance: not stored for this version (trained before it was kept)"]
    else:
        lines += [
            f"permutation importance: fall of holdout {importance.metric} when a feature is shuffled "
            f"({importance.n_repeats} repeats, {importance.rows:,} rows)",
            format_table(
                [
                    {"feature": f.feature + _marked(f), "mean": f.mean, "std": f.std}
                    for f in importance.features
                ],
                ["feature", "mean", "std"],
            ),
        ]
    return "\n".join(lines)


def _marked(feature: Any) -> str:
    """How an importance row's name is marked: a missing indicator, a derived feature, or neither."""
    return " (missing indicator)" if feature.indicator else " (derived)" if feature.derived else ""


def task_pictures_text(detail: VersionDetail) -> list[str]:
    """A regression version's calibration, a multiclass one's per-class table and confusion matrix
    (the page's pictures as text); nothing for binary, whose curves the page draws."""
    curves = detail.curves
    if curves is None or curves.kind == "binary":
        return []
    if curves.kind == "regression":
        rows = [
            {"mean predicted": p, "mean actual": a, "rows": n}
            for p, a, n in zip(
                curves.calibration.predicted, curves.calibration.actual, curves.calibration.rows, strict=True
            )
        ]
        edges, counts = curves.residuals.edges, curves.residuals.counts
        bins = [
            {"residual from": a, "to": b, "rows": n}
            for a, b, n in zip(edges[:-1], edges[1:], counts, strict=True)
        ]
        return [
            f"calibration: mean label per tenth of the predictions ({curves.rows:,} rows)",
            format_table(rows, list(rows[0])),
            "",
            "residuals (actual - predicted)",
            format_table(bins, ["residual from", "to", "rows"]),
            "",
        ]
    per_class = [c.model_dump() for c in curves.per_class]
    confusion = [
        {"actual": name, **dict(zip(curves.classes, row, strict=True))}
        for name, row in zip(curves.classes, curves.confusion.normalised, strict=True)
    ]
    return [
        f"per class ({curves.rows:,} holdout rows)",
        format_table(per_class, ["name", "precision", "recall", "f1", "rows"]),
        "",
        "confusion matrix, each actual class's row normalised (columns: predicted)",
        format_table(confusion, ["actual", *curves.classes]),
        "",
    ]


def gate(use_case: str) -> Rows:
    """Every gate decision (the registry's read model): both sides' metrics, the paired gains, the slices."""
    from include.registry.read_models import decision_detail

    return [decision_detail(d).model_dump(mode="json") for d in _registry().decisions(use_case)]


def runs(use_case: str) -> Rows:
    """The ingest run records, one per day."""
    from include.platform.queries import as_plain, ingest_run_records

    return as_plain(ingest_run_records(_engine(), use_case))


def trainings(use_case: str) -> Rows:
    """Every training run: the version it registered, or the existing one it found unchanged, and
    the days of its window it read (withdrawn or missing ones named)."""
    from include.platform.queries import as_plain
    from include.training.task import WindowCoverage

    rows = []
    for run in _registry().training_runs(use_case):
        coverage = run.window_coverage and WindowCoverage.from_dict(run.window_coverage).text()
        rows.append({**as_plain(run), "window": coverage or "not recorded"})
    return rows


def predictions(use_case: str, ds: dt.date | None = None) -> Rows:
    """Each scored day: rows in the table, model version(s), score distribution and the run record."""
    from include.platform.queries import scored_days

    rows = []
    for day in scored_days(_engine(), use_case, ds):
        run = day.run
        rows.append(
            {
                "ds": day.ds.isoformat(),
                "rows": day.rows,
                "model_version": day.model_version,
                "model_versions": day.model_versions,
                "score_min": day.score_min,
                "score_mean": day.score_mean,
                "score_max": day.score_max,
                "positive_rate": day.positive_rate,
                "rows_in": run and run.rows_in,
                "rows_rejected": run and run.rows_rejected,
                "drift": run and run.drift_level,
                "score_histogram": run and run.score_histogram,
                "rejected_reasons": run and run.rejected_reasons,
            }
        )
    return rows


def drift(use_case: str, ds: dt.date | None = None) -> Rows:
    """Every feature's drift on day `ds`; without a day, each day's worst feature."""
    from include.platform.queries import drift_of, worst_drift_by_day

    if ds:
        keep = ("feature", "kind", "psi", "level", "model_version", "rows", *DRIFT_SHARES)
        return [{k: getattr(m, k) for k in keep} for m in drift_of(_engine(), use_case, ds)]
    return [
        {"ds": m.ds.isoformat(), "worst_feature": m.feature, "psi": m.psi, "level": m.level}
        for m in worst_drift_by_day(_engine(), use_case)
    ]


def performance(use_case: str) -> Rows:
    """Each matured scored day's realised primary metric with its interval, beside the holdout
    figure of the version that scored it, the coverage and whether it decayed."""
    from include.platform.queries import realised_records

    rows = []
    for day in realised_records(_engine(), use_case):
        primary = day.primary_metric
        figure = day.metrics.get(primary, {})
        rows.append(
            {
                "ds": day.ds.isoformat(),
                "version": day.model_version,
                "metric": primary,
                "realised": figure.get("estimate"),
                "lower": figure.get("lower"),
                "upper": figure.get("upper"),
                "expected": day.expected.get(primary),
                "coverage": round(day.coverage, 4),
                "rows_matched": day.rows_matched,
                "decayed": day.decayed,
                "through": day.evaluated_through.isoformat(),
                "metrics": day.metrics,
            }
        )
    return rows


def champions(use_case: str) -> Rows:
    """The audit trail: every move of the champion, who made it, when and why."""
    from include.platform.queries import as_plain

    return [as_plain(change) for change in _registry().champion_history(use_case)]


def move_champion(
    use_case: str, kind: str, version: int | None, reason: str, force: bool, ds: dt.date | None
) -> int:
    """Promote a version, or roll back (to `version`, default the champion before the current one),
    as the OS user running the command; prints the new audit entry."""
    import getpass

    from include.platform.queries import as_plain

    registry = _registry()
    if version is None:
        version = _previous_champion(registry, use_case)
    change = registry.move_champion(
        use_case,
        version,
        kind=kind,
        actor=f"cli:{getpass.getuser()}",
        reason=reason,
        ds=ds,
        force=force,
    )
    row = as_plain(change)
    print(format_table([row], list(row)))
    return 0


def _previous_champion(registry: Any, use_case: str) -> int:
    """The version that was champion before the current one.

    Raises:
        LookupError: when the use case has had no champion before the current one.
    """
    history = registry.champion_history(use_case)
    current = registry.champion(use_case)
    earlier = [c.version for c in history if current is None or c.version != current.version]
    if not earlier:
        raise LookupError(f"{use_case}: no earlier champion to roll back to; name one with --version")
    return earlier[-1]


READERS: dict[str, tuple[str, Callable[..., Rows]]] = {
    "models": ("registered versions", models),
    "gate": ("gate decisions", gate),
    "runs": ("ingest runs", runs),
    "trainings": ("training runs", trainings),
    "predictions": ("scored days", predictions),
    "drift": ("drift per day, or per feature with --ds", drift),
    "performance": ("realised performance of each matured scored day", performance),
    "champions": ("every move of the champion: the audit trail", champions),
}
# What the plain-text tables leave out (the JSON keeps it).
DRIFT_SHARES = ("buckets", "reference_shares", "actual_shares")
WIDE = ("score_histogram", "rejected_reasons", *DRIFT_SHARES, "window_coverage", "metrics")


def gate_table(rows: Rows, primary: str) -> str:
    """Gate decisions as a table: both sides' primary metric and accuracy, the primary's paired gain
    with its bounds, and the reason."""

    def metric(row: dict[str, Any], name: str) -> dict[str, Any]:
        return next((m for m in row["metrics"] if m["metric"] == name), {})

    def side_by_side(row: dict[str, Any], name: str) -> str:
        found = metric(row, name)
        return f"{_fmt(found.get('candidate'))} / {_fmt(found.get('champion'))}"

    def gain(row: dict[str, Any]) -> str:
        found = metric(row, primary)
        if found.get("gain") is None:
            return "-"
        bounds = f"[{found['gain_lower']:+.4f}, {found['gain_upper']:+.4f}]"
        return f"{found['gain']:+.4f} {bounds} at {row['confidence']:.0%}"

    def backtest(row: dict[str, Any]) -> str:
        found = row.get("backtest") or {}
        if found.get("gain") is None:
            return "-"
        days = f"{len(found['days'])} days {found['first']} .. {found['last']}"
        return f"{found['gain']:+.4f} [{found['lower']:+.4f}, {found['upper']:+.4f}] on {days}"

    flat = [
        {
            "candidate": f"v{r['candidate_version']}",
            "champion": f"v{r['champion_version']}" if r["champion_version"] else "none",
            "ds": r["ds"],
            "passed": r["passed"],
            f"{primary} (cand/champ)": side_by_side(r, primary),
            "accuracy (cand/champ)": side_by_side(r, "accuracy"),
            f"{primary} gain [bounds]": gain(r),
            "backtest gain [bounds]": backtest(r),
            "reason": "; ".join(r["reasons"]),
        }
        for r in rows
    ]
    shown = [c for c in flat[0] if c != "backtest gain [bounds]" or any(r.get("backtest") for r in rows)]
    return format_table(flat, shown)


def histogram_text(counts: list[int], width: int = 40) -> str:
    """Rows per tenth of the score range, as bars."""
    top = max(counts, default=0) or 1
    return "\n".join(
        f"{i / 10:.1f}-{(i + 1) / 10:.1f}  {'#' * round(width * n / top):<{width}}  {n}"
        for i, n in enumerate(counts)
    )


def database(action: str) -> int:
    """`db upgrade` migrates the platform database to the newest revision; `db current` tells where it is."""
    from include.io.connections import engine_for
    from include.platform.schema import UPGRADE_COMMAND, current, head, upgrade

    engine = engine_for(Settings.from_env().platform_db_conn_id)
    where = engine.url.render_as_string(hide_password=True)
    if action == "upgrade":
        before, after = upgrade(engine)
        moved = "already at" if before == after else f"{before or 'empty'} ->"
        print(f"{where}: {moved} revision {after}")
    else:
        found = current(engine)
        state = "up to date" if found == head() else f"behind: run `{UPGRADE_COMMAND}`"
        print(f"{where}: revision {found or 'none'}, newest {head()} ({state})")
    return 0


def show_version(use_case: str, version: int, as_json: bool) -> int:
    """Print one version (`version_detail`); a LookupError names the known versions when there is none."""
    detail = version_detail(use_case, version)
    print(detail.model_dump_json(indent=2) if as_json else version_text(detail))
    return 0


def version_number(text: str) -> int:
    """`--version`'s value: a whole number from 1 to the registry's `MAX_VERSION`."""
    from include.registry.registry import MAX_VERSION

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= MAX_VERSION:
        raise argparse.ArgumentTypeError(f"{value} is not a version number (1 to {MAX_VERSION})")
    return value


def main(argv: list[str] | None = None) -> int:
    """Run one command; 2, with the reason on stderr, for an unknown use case or version, a missing
    connection or a platform database behind the code."""
    from airflow.sdk.exceptions import AirflowNotFoundException

    from include.platform.schema import SchemaBehindError
    from include.usecases.spec import SpecError

    try:
        return _command(argv)
    except (SpecError, LookupError, ValueError, SchemaBehindError, AirflowNotFoundException) as problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2


def _command(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="python -m include.cli", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, (text, _) in READERS.items():
        sub = commands.add_parser(name, help=text)
        sub.add_argument("use_case")
        sub.add_argument("--json", action="store_true", help="JSON for scripts")
        if name in ("predictions", "drift"):
            sub.add_argument("--ds", type=parse_ds, help="one day, YYYY-MM-DD")
        if name == "models":
            sub.add_argument(
                "--version", type=version_number, help="one version in full: trials, bounds, importance"
            )
    for kind, text in (
        ("promote", "make a version the champion from a day on (default today), with a reason"),
        ("rollback", "put back an earlier champion (default: the one before the current), with a reason"),
    ):
        move = commands.add_parser(kind, help=text)
        move.add_argument("use_case")
        move.add_argument("--version", type=version_number, required=kind == "promote")
        move.add_argument("--reason", required=True, help="why: kept in the audit trail")
        move.add_argument(
            "--force", action="store_true", help="a version that neither passed its gate nor was champion"
        )
        move.add_argument(
            "--ds", type=parse_ds, help="the first scoring day it holds for (default today, UTC)"
        )
    db = commands.add_parser("db", help="the platform tables' schema")
    db.add_argument("action", choices=("upgrade", "current"))
    args = parser.parse_args(argv)
    if args.command == "db":
        return database(args.action)
    spec = get_spec(args.use_case, Settings.from_env().spec_dir)  # an unknown use case stops here
    if args.command in ("promote", "rollback"):
        return move_champion(args.use_case, args.command, args.version, args.reason, args.force, args.ds)
    if getattr(args, "version", None) is not None:
        return show_version(args.use_case, args.version, args.json)
    day = {"ds": args.ds} if getattr(args, "ds", None) else {}
    rows = READERS[args.command][1](args.use_case, **day)
    if args.json:
        print(json.dumps(rows, indent=2, default=_json_default))
    elif not rows:
        print(f"no {args.command} for {args.use_case}")
    elif args.command == "gate":
        print(gate_table(rows, spec.gate.primary))
    else:
        print(format_table(rows, [c for c in rows[0] if c not in WIDE]))
        if args.command == "predictions" and len(rows) == 1:
            print(histogram_text(rows[0]["score_histogram"] or []))
    return 0


def _json_default(value: Any) -> str:
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    raise TypeError(f"not JSON-able: {type(value).__name__}")


if __name__ == "__main__":
    sys.exit(main())
