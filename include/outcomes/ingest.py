"""A day of observed outcomes: read from the spec's outcomes source, checked as ingest checks a
source (the entity id's and the label's column rules), then kept or counted with their reasons.

A row is quarantined when a column fails its rule, when its entity appears twice in the day, or
when no prediction was made for its entity in the days it could judge (`unknown`). A day whose
share of faulty rows (all but the unknown entities') passes `ingest.max_quarantine_fraction` fails,
naming its commonest reasons.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterable

import pyarrow as pa

from include.ingest.checks import check_batch, duplicate_reason, reason_kind, source_rules, split_reasons
from include.ingest.validate import IngestError
from include.usecases.spec import UseCase

# An outcome of an entity that was never scored in the days it could judge: counted, but not held
# against the day's quarantine limit (the first days of a deployment see outcomes of earlier states).
UNKNOWN_ENTITY = "{entity}: no prediction for this entity in the days it could judge"


@dataclasses.dataclass(frozen=True)
class OutcomeDay:
    """The outcomes kept for one day of observation, and what was quarantined, by reason kind."""

    kept: dict[str, object]
    rows_read: int
    quarantined: int
    reasons: Counter

    def top_reasons(self, top: int = 10) -> dict[str, int]:
        return dict(self.reasons.most_common(top))


def check_outcomes(
    spec: UseCase,
    batches: Iterable[pa.RecordBatch],
    unknown: Callable[[list[str]], set[str]],
    where: str,
) -> OutcomeDay:
    """Check a day's outcome rows; `unknown` tells which of the entity ids were never scored.

    Raises:
        IngestError: naming `where` and the commonest reasons, when more than
            `ingest.max_quarantine_fraction` of the rows are faulty (unknown entities aside).
    """
    assert spec.outcomes is not None
    entity, label = spec.entity_id, spec.label.column
    rules = source_rules({name: spec.columns[name] for name in spec.outcomes.source.columns})
    ids: list[str | None] = []
    values: list[object] = []
    reasons: list[list[str]] = []
    for batch in batches:
        checked = check_batch(batch.select([rule.name for rule in rules]), rules, entity)
        ids += checked.typed[entity].cast(pa.string()).to_pylist()
        values += checked.typed[label].to_pylist()
        for head, tail in zip(checked.head.to_pylist(), checked.tail.to_pylist(), strict=True):
            reasons.append([r for r in (*split_reasons(head or ""), *split_reasons(tail or "")) if r])
    seen = Counter(i for i, why in zip(ids, reasons, strict=True) if i is not None and not why)
    never_scored = unknown(sorted(i for i in seen if seen[i] == 1))
    kept: dict[str, object] = {}
    counts: Counter = Counter()
    for entity_id, value, checked in zip(ids, values, reasons, strict=True):
        why = checked or _day_reasons(entity, entity_id, seen, never_scored)
        if why:
            counts.update(reason_kind(reason) for reason in why)
        else:
            kept[entity_id] = value
    day = OutcomeDay(kept, len(ids), len(ids) - len(kept), counts)
    limit = spec.ingest.max_quarantine_fraction
    faulty = day.quarantined - counts[UNKNOWN_ENTITY.format(entity=entity)]
    if day.rows_read and faulty / day.rows_read > limit:
        raise IngestError(
            f"{where}: {day.quarantined} of {day.rows_read} outcome rows quarantined, more than "
            f"ingest.max_quarantine_fraction ({limit}); commonest reasons: {day.top_reasons(3)}"
        )
    return day


def _day_reasons(entity: str, entity_id: str, seen: Counter, never_scored: set[str]) -> list[str]:
    """What only the whole day tells of a row that passed its column rules: a repeated entity, or
    one that no prediction names."""
    if seen[entity_id] > 1:
        return [duplicate_reason(entity, entity_id)]
    if entity_id in never_scored:
        return [UNKNOWN_ENTITY.format(entity=entity)]
    return []
