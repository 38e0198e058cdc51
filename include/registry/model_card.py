"""A version's model card: Markdown written from the registry's stored facts, kept beside the model.

`model_card` writes the card from a version, its gate decision, its training run's window coverage
(each day's partition sha256) and, from the gate, its fairness figures; it reads no clock, so the
same facts give the same bytes. `write_card` stores it at `models/<use case>/cards/v<N>.md`
(`include.io.lake.card_key`): the training DAG writes it at registration and again at the gate's
decision. `card_blocks` reads a card back into headings, paragraphs, lists and tables for the
version's page, which renders them escaped.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from include.io.stores import ObjectStore
    from include.registry.registry import GateRecord, ModelVersion, Registry
    from include.usecases.spec import UseCase

# A stretch of text and whether it is code (written between backticks in the card).
Inline = tuple[tuple[str, bool], ...]


def write_card(
    lake: ObjectStore,
    registry: Registry,
    spec: UseCase,
    version: int,
    fairness: Sequence[Mapping[str, Any]] | None = None,
) -> str:
    """(Re)write the card of `spec`'s `version` from the registry, replacing it whole; its key.

    Args:
        fairness: the gate decision's fairness figures (`GateDecision.to_dict()["fairness"]`), which
            the registry does not keep; None before the gate, or when it measured none.
    """
    from include.io.lake import card_key

    found = registry.get(spec.name, version)
    text = registry_card(registry, spec, found, registry.decision(spec.name, version), fairness)
    key = card_key(spec.name, version)
    lake.put_bytes(key, text.encode())
    return key


def registry_card(
    registry: Registry,
    spec: UseCase,
    version: ModelVersion,
    record: GateRecord | None,
    fairness: Sequence[Mapping[str, Any]] | None = None,
) -> str:
    """`model_card` of `version`, with the window coverage its training run recorded and the
    fairness figures its gate decision keeps (unless given)."""
    coverage = next(
        (
            run.window_coverage
            for run in registry.training_runs(spec.name)
            if run.run_id == version.run_id and run.version == version.version
        ),
        None,
    )
    if fairness is None and record is not None:
        fairness = (record.evidence or {}).get("fairness")
    return model_card(spec, version, record, coverage, fairness)


def model_card(
    spec: UseCase,
    version: ModelVersion,
    record: GateRecord | None,
    coverage: Mapping[str, Any] | None,
    fairness: Sequence[Mapping[str, Any]] | None,
) -> str:
    """The card's Markdown: intended use, data, features, model and search, holdout metrics, slices,
    fairness, importance, the gate's decision, code and libraries.

    Args:
        spec: the use case (its description, owner, label, features and gate settings).
        version: the registered version.
        record: its gate decision, or None before the gate.
        coverage: its training run's window coverage (`WindowCoverage.to_dict()`), or None.
        fairness: the gate's fairness figures (`AttributeFairness.to_dict()` each), or None.
    """
    from include.io.lake import card_key

    sections = [
        [f"# {spec.name} v{version.version}: model card"],
        _intended_use(spec, version),
        _data(version, coverage),
        _features(spec),
        _search(version),
        _metrics(version, record),
        _slices(spec, record),
        _fairness(spec, record, fairness, card_key(spec.name, version.version)),
        _importance(version),
        _decision(record),
        _code(spec, version),
    ]
    return "\n\n".join("\n".join(lines) for lines in sections) + "\n"


def _figure(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def _bounds(lower: float | None, upper: float | None, signed: bool = False) -> str:
    if lower is None or upper is None:
        return "–"
    form = "{:+.4f}" if signed else "{:.4f}"
    return f"[{form.format(lower)}, {form.format(upper)}]"


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|")


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]


def _code_list(names: Sequence[str]) -> str:
    return ", ".join(f"`{name}`" for name in names)


def _intended_use(spec: UseCase, version: ModelVersion) -> list[str]:
    label = f"`{spec.label.column}`"
    predicts = {
        "binary": f"the probability that {label} is {json.dumps(spec.label.positive)}, predicted "
        f"positive from {version.threshold:.4f}",
        "multiclass": f"the probability of each class of {label}",
        "regression": f"the value of {label}",
    }[spec.task]
    lines = ["## Intended use", ""]
    if spec.description:
        lines += [" ".join(spec.description.split()), ""]
    return [
        *lines,
        f"- owner: {spec.owner}",
        f"- task: {spec.task}: {predicts}, for each `{spec.entity_id}`",
        f"- scored by `{spec.score_dag_id}` when this version is the champion as of the scored day",
    ]


def _data(version: ModelVersion, coverage: Mapping[str, Any] | None) -> list[str]:
    rows = version.row_counts or {}
    train, holdout = (f" ({rows[k]:,} {k} rows)" if k in rows else "" for k in ("train", "holdout"))
    lines = [
        "## Training data",
        "",
        f"- trained as of {version.ds}, data window {version.window_start} .. {version.window_end}{train}",
        f"- holdout {version.holdout_start} .. {version.holdout_end}{holdout}: the newest days, never "
        "seen in fitting or tuning",
        f"- fingerprint `{version.fingerprint or 'not recorded'}` (the window's partitions, the model "
        "settings, the code and the libraries)",
    ]
    digests = (coverage or {}).get("sha256") or {}
    if not digests:
        return [*lines, "", "The window's partition checksums were not recorded for this version."]
    gaps = [f"{what}: {', '.join(coverage[what])}" for what in ("withdrawn", "missing") if coverage.get(what)]
    first, last = (dt.date.fromisoformat(coverage[end]) for end in ("first", "last"))
    expected = (last - first).days + 1
    lines.append(f"- days read: {len(digests)} of {expected}" + "".join(f"; {gap}" for gap in gaps))
    table = _table(
        ["day", "partition sha256"], [(day, f"`{digest}`") for day, digest in sorted(digests.items())]
    )
    return [*lines, "", *table]


def _features(spec: UseCase) -> list[str]:
    features = spec.features
    lines = ["## Features", ""]
    for kind in ("numeric", "categorical", "boolean", "datetime"):
        if names := getattr(features, kind):
            lines.append(f"- {kind}: {_code_list(names)}")
    lines += [f"- derived: `{name}` = `{text}`" for name, text in features.derived.items()]
    return lines


def _search(version: ModelVersion) -> list[str]:
    params = json.dumps(version.params, sort_keys=True)
    lines = ["## Model and search", "", f"- family `{version.family}`, parameters `{params}`"]
    chosen = next((t for t in version.trials if t["trial"]["trial_id"] == version.chosen_trial), None)
    if chosen is not None:
        lines.append(
            f"- chosen trial `{version.chosen_trial}` (cross-validated {chosen['primary']} "
            f"{chosen['primary_mean']:.4f} ± {chosen['primary_std']:.4f}), refitted on every training row"
        )
    if not version.trials:
        return [*lines, "", "No trials recorded."]
    rows = [
        (
            f"`{t['trial']['trial_id']}`"
            + (" (chosen)" if t["trial"]["trial_id"] == version.chosen_trial else ""),
            t["trial"]["family"],
            f"`{json.dumps(t['trial']['params'], sort_keys=True)}`",
            f"{t['primary_mean']:.4f}",
            f"{t['primary_std']:.4f}",
        )
        for t in version.trials
    ]
    metric = version.trials[0]["primary"]
    lines += ["", f"{len(rows)} trials searched:", ""]
    return lines + _table(["trial", "family", "parameters", f"CV {metric} mean", "std"], rows)


def _metrics(version: ModelVersion, record: GateRecord | None) -> list[str]:
    levels = ((record.evidence if record else None) or {}).get("levels", {})
    if levels:
        confidence = next(iter(levels.values())).get("confidence") or 0.9
        note = (
            f"Bounds: the gate's bootstrap resamples of the holdout, each bound one-sided at "
            f"{confidence:.0%} (together an interval of {2 * confidence - 1:.0%})."
        )
    elif record is None:
        note = "Bounds come with the gate's decision: not judged yet."
    else:
        note = "No bounds: the gate decided without measuring this version."
    rows = [
        (name, _figure(value), _bounds(levels.get(name, {}).get("lower"), levels.get(name, {}).get("upper")))
        for name, value in version.metrics.items()
    ]
    return ["## Holdout metrics", "", note, "", *_table(["metric", "value", "bounds"], rows)]


def _slices(spec: UseCase, record: GateRecord | None) -> list[str]:
    lines = ["## Slices", ""]
    stored = ((record.evidence if record else None) or {}).get("slices", [])
    if stored:
        lines += [f"The gain of {spec.gate.primary} over the champion on each slice of the holdout:", ""]
        rows = [
            (
                f"{s['column']} = {s['value']}",
                s["rows"],
                f"{s['estimate']:+.4f}",
                _bounds(s["lower"], s["upper"], True),
            )
            for s in stored
        ]
        return lines + _table(["slice", "rows", "gain", "bounds"], rows)
    if not spec.gate.slices:
        return [*lines, "None: the spec names no `gate.slices`."]
    columns = _code_list(spec.gate.slices)
    if record is None:
        return [*lines, f"Measured against the champion on {columns} when the gate judges this version."]
    return [*lines, f"None measured on {columns}: the gate compares slices with a champion, and had none."]


def _fairness(
    spec: UseCase, record: GateRecord | None, fairness: Sequence[Mapping[str, Any]] | None, key: str
) -> list[str]:
    lines = ["## Fairness", ""]
    declared = spec.gate.fairness
    if fairness:
        lines.append(
            "On the holdout, per group of each protected attribute. A figure's largest gap is between "
            "the groups with its highest and lowest value, with bounds from the gate's resamples."
        )
        if declared is not None and declared.max_gap is not None:
            lines.append(f"The gate fails a gap whose lower bound exceeds `max_gap` {declared.max_gap:.4f}.")
        for part in fairness:
            lines += ["", *_attribute(part)]
        return lines
    if declared is None:
        return [*lines, "No protected attributes declared (`gate.fairness.attributes`)."]
    names = _code_list(declared.attributes)
    if record is None:
        return [*lines, f"Measured on {names} when the gate judges this version."]
    return [*lines, f"Measured on {names} by the gate: the figures are in the card stored at `{key}`."]


def _attribute(part: Mapping[str, Any]) -> list[str]:
    """One attribute's groups and gaps, on the candidate's holdout."""
    groups = part["groups"]
    figures = [name for name in groups[0] if name not in ("value", "rows")] if groups else []
    rows = [(g["value"], f"{g['rows']:,}", *(_figure(g[name]) for name in figures)) for g in groups]
    lines = [f"### {part['attribute']}", "", *_table(["group", "rows", *figures], rows), ""]
    for gap in part["gaps"]:
        lines.append(
            f"- largest {gap['metric']} gap {gap['estimate']:.4f} {_bounds(gap['lower'], gap['upper'])}: "
            f"{gap['high']} ({gap['high_value']:.4f}) against {gap['low']} ({gap['low_value']:.4f})"
        )
    if not part["gaps"]:
        lines.append(f"- no gap: fewer than two groups of {part['min_rows']} rows or more")
    elif any(g["rows"] < part["min_rows"] for g in groups):
        lines.append(f"- a group of fewer than {part['min_rows']} rows counts in no gap")
    return lines


def _importance(version: ModelVersion) -> list[str]:
    lines = ["## Permutation importance", ""]
    found = version.importance
    if not found:
        return [*lines, "Not stored for this version."]
    lines += [
        f"The fall of holdout {found['metric']} when a feature is shuffled ({found['n_repeats']} repeats, "
        f"{found['rows']:,} rows):",
        "",
    ]
    rows = [
        (
            f"`{f['feature']}`" + (" (derived)" if f.get("derived") else ""),
            f"{f['mean']:.4f}",
            f"{f['std']:.4f}",
        )
        for f in found["features"]
    ]
    return lines + _table(["feature", "mean", "std"], rows)


def _decision(record: GateRecord | None) -> list[str]:
    lines = ["## Gate decision", ""]
    if record is None:
        return [*lines, "Not judged yet."]
    against = f"champion v{record.champion_version}" if record.champion_version else "no champion"
    verdict = "passed" if record.passed else "rejected"
    lines += [f"{verdict} against {against}, as of {record.ds} (run `{record.run_id}`):", ""]
    return lines + [f"- {reason}" for reason in record.reasons]


def _code(spec: UseCase, version: ModelVersion) -> list[str]:
    lines = [
        "## Code and libraries",
        "",
        f"- code version `{version.code_version}`",
        f"- training run `{version.run_id}` of `{spec.train_dag_id}`",
        f"- model file `{version.artifact_uri}`, sha256 `{version.sha256}`",
        "",
    ]
    return lines + _table(["library", "version"], sorted(version.library_versions.items()))


@dataclass(frozen=True)
class CardBlock:
    """One block of a card: a heading (with its level), a paragraph, a list or a table."""

    kind: Literal["heading", "paragraph", "list", "table"]
    level: int = 0
    text: Inline = ()
    items: tuple[Inline, ...] = ()
    header: tuple[Inline, ...] = ()
    rows: tuple[tuple[Inline, ...], ...] = ()


def _inline(text: str) -> Inline:
    """Text with its `code` stretches marked."""
    parts = re.split(r"`([^`]*)`", text)
    return tuple((part, i % 2 == 1) for i, part in enumerate(parts) if part)


def _cells(line: str) -> tuple[Inline, ...]:
    inner = line.strip().removeprefix("|").removesuffix("|")
    return tuple(_inline(cell.strip().replace("\\|", "|")) for cell in re.split(r"(?<!\\)\|", inner))


def card_blocks(text: str) -> list[CardBlock]:
    """A card's Markdown (the subset `model_card` writes) as blocks, for a page to render escaped."""
    blocks: list[CardBlock] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        kind = _kind_of(lines[i])
        if kind == "blank":
            i += 1
        elif kind == "heading":
            hashes, title = lines[i].split(" ", 1)
            blocks.append(CardBlock("heading", level=len(hashes), text=_inline(title)))
            i += 1
        else:
            group = []
            while i < len(lines) and _kind_of(lines[i]) == kind:
                group.append(lines[i])
                i += 1
            blocks.append(_block(kind, group))
    return blocks


def _kind_of(line: str) -> str:
    if not line.strip():
        return "blank"
    if re.match(r"^#{1,6} ", line):
        return "heading"
    return "table" if line.startswith("|") else "list" if line.startswith("- ") else "paragraph"


def _block(kind: str, group: list[str]) -> CardBlock:
    if kind == "table":
        body = [row for row in group[1:] if not re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", row.strip())]
        return CardBlock("table", header=_cells(group[0]), rows=tuple(_cells(row) for row in body))
    if kind == "list":
        return CardBlock("list", items=tuple(_inline(item[2:]) for item in group))
    return CardBlock("paragraph", text=_inline(" ".join(group)))
