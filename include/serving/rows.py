"""A use case's request rows: the pydantic models built from its spec, ingest's value rules, and rows →
the batch path's frame.

A request row is checked in two steps, each naming every problem with its row and field:

1. its shape and types (`row_model`, pydantic): every feature present (a nullable one may be
   `null`), no unknown field, each value of its column's JSON type with no coercion (`"12"` is not
   a number, `true` is not 1), a number finite, an integer within ±(2**53 - 1);
2. its values (`ValueRules`), by ingest's own rules for the spec's columns
   (`include.ingest.checks.column_rules`): the allowed values, `min`/`max`, the pattern, a float's
   finite float32 bound, a blank text as no value; and text must be Unicode (JSON can escape a lone
   surrogate, which no UTF-8 text holds). The rules are not restated here, so a row the
   service scores is a row ingest would keep, and the refusal names the check ingest's quarantine
   names (`1e+300 fails finite_float32(|x| <= 3.4028235e+38)`). Where ingest would keep a text value
   changed (trimmed of surrounding blanks, or a blank as null) the service refuses it instead, since
   it scores what it is sent.

The OpenAPI document shows each field's rules (enum, minimum, maximum, pattern) for the reader.

`rows_to_frame` turns validated rows into exactly the frame batch scoring gives the pipeline: the
rows become an Arrow batch with the partition's types, then `include.scoring.score.to_frame` (text
features as categoricals) — one conversion, so the same row gives the same floats online and in batch.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from operator import itemgetter
from typing import Annotated, Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, create_model

# What an ingested partition holds, and the rules ingest keeps or quarantines a row by.
from include.ingest.checks import ARROW_TYPES, FLOAT32_MAX, ColumnRules, blank_to_null, column_rules, shown
from include.scoring.score import to_frame
from include.usecases.spec import Column, UseCase

# An integer field's domain: the integers a float64 holds exactly (RFC 8259's interoperable range).
# The model reads every feature as float64, and ingest's range checks compare an integer column with
# its float bounds in float64: Arrow refuses to compare a larger integer (an error, not a refusal).
SAFE_INTEGER = 2**53 - 1


def field_type(column: Column) -> Any:
    """The pydantic type of one spec column: its JSON type and whether it may be null.

    The column's value rules are ingest's, run by `ValueRules`; they are only shown here, in the
    OpenAPI document (enum, minimum, maximum, pattern).
    """
    shown_rules = {
        "enum": list(column.allowed) if column.allowed else None,
        "minimum": column.min,
        "maximum": column.max,
        "pattern": column.pattern,
    }
    documented = Field(json_schema_extra={k: v for k, v in shown_rules.items() if v is not None})
    if column.type == "string":
        kind: Any = StrictStr
    elif column.type == "integer":
        kind = Annotated[StrictInt, Field(ge=-SAFE_INTEGER, le=SAFE_INTEGER)]
    elif column.type == "float":
        kind = Annotated[
            float,
            Field(
                strict=True,
                allow_inf_nan=False,
                description=f"a finite number of at most {FLOAT32_MAX:.8g} in magnitude (float32's range)",
            ),
        ]
    elif column.type == "boolean":
        kind = StrictBool
    elif column.type == "date":
        kind = dt.date
    else:
        kind = dt.datetime
    kind = Annotated[kind, documented]
    return kind | None if column.nullable else kind


def row_model(spec: UseCase) -> type[BaseModel]:
    """The model of one request row: every feature (required), and the entity id (optional, echoed)."""
    fields: dict[str, Any] = {name: (field_type(spec.columns[name]), ...) for name in spec.features.all}
    entity = spec.columns[spec.entity_id]
    fields[spec.entity_id] = (
        field_type(entity.model_copy(update={"nullable": True})),
        Field(None, description="Optional: echoed in the answer as `entity_id`; not a feature."),
    )
    model = create_model(  # type: ignore[call-overload]
        f"{_camel(spec.name)}Row",
        __config__=ConfigDict(extra="forbid"),
        __doc__=f"One {spec.name} row: the spec's feature columns. {spec.description}".strip(),
        **fields,
    )
    return model


def request_model(spec: UseCase, max_rows: int) -> type[BaseModel]:
    """The body of `POST /v1/<use case>/score`: `{"rows": [row, ...]}`, 1 to `max_rows` rows."""
    rows = Annotated[list[row_model(spec)], Field(min_length=1, max_length=max_rows)]  # type: ignore[misc]
    return create_model(  # type: ignore[call-overload]
        f"{_camel(spec.name)}ScoreRequest",
        __config__=ConfigDict(extra="forbid"),
        __doc__=f"Rows to score with the {spec.name} champion (one or many).",
        rows=(rows, ...),
    )


@dataclass(frozen=True)
class ValueProblem:
    """A value of a typed row that ingest's rules refuse (or would keep changed): where, and why."""

    row: int
    field: str
    type: str
    message: str
    value: Any


# Values per field whose verdict is remembered (see `ValueRules`): a categorical column's few values
# all fit; a continuous one's stop being added once this many are known.
KEPT_VALUES = 10_000


@dataclass(frozen=True)
class ValueRules:
    """Ingest's rules for every field of a request row: the features, then the (optional) entity id.

    The rules are pure functions of a value, so each field remembers the values it has found good
    (up to `KEPT_VALUES`, and null, which is pydantic's to refuse): a request's categorical values
    are almost always known, so a column whose values are all known costs one set comparison, and
    only its new values are checked, by ingest's Arrow kernels, as ingest checks them.
    """

    rules: tuple[ColumnRules, ...]
    kept: dict[str, set[Any]] = field(default_factory=dict)

    @classmethod
    def of(cls, spec: UseCase) -> ValueRules:
        entity = spec.columns[spec.entity_id].model_copy(update={"nullable": True})
        features = [column_rules(name, spec.columns[name]) for name in spec.features.all]
        rules = (*features, column_rules(spec.entity_id, entity))
        return cls(rules, {rule.name: {None} for rule in rules})

    def problems(self, rows: Sequence[dict[str, Any]]) -> list[ValueProblem]:
        """Every value of typed `rows` (`row_model`'s) that ingest would not keep as it is, row by row.

        Each column's new values are checked at once with ingest's Arrow kernels: its allowed values,
        then its checks (range, pattern, finite float32), in the order ingest lists them in a reason.
        """
        found: list[ValueProblem] = []
        names = itemgetter(*(rule.name for rule in self.rules))
        columns = zip(*map(names, rows), strict=True)  # each rule's column, as a tuple
        for rule, column in zip(self.rules, columns, strict=False):  # no rows: no columns
            kept = self.kept[rule.name]
            if kept.issuperset(column):
                continue
            where = [n for n, value in enumerate(column) if value not in kept]
            values = [column[n] for n in where]
            problems = _column_problems(rule, values)
            found += [replace(p, row=where[p.row]) for p in problems]
            if len(kept) < KEPT_VALUES:
                refused = {p.row for p in problems}
                kept.update(v for k, v in enumerate(values) if k not in refused)
        if not found:
            return found
        order = {rule.name: k for k, rule in enumerate(self.rules)}
        return sorted(found, key=lambda p: (p.row, order[p.field]))


def _column_problems(rule: ColumnRules, values: list[Any]) -> list[ValueProblem]:
    """The problems of one column's (non-null) values, each at its index in `values`."""
    typed, found = _typed(rule, values)
    present = typed.is_valid()
    outcomes = []
    if rule.allowed is not None:
        outcomes.append(("isin", rule.allowed_label, pc.invert(pc.is_in(typed, rule.allowed))))
    outcomes += [(check.label.split("(", 1)[0], check.label, check.fails(typed)) for check in rule.checks]
    for kind, label, fails in outcomes:
        for n in pc.indices_nonzero(pc.and_kleene(present, fails)).to_pylist():
            found.append(ValueProblem(n, rule.name, kind, f"{shown(values[n])} fails {label}", values[n]))
    return found


def _typed(rule: ColumnRules, values: list[Any]) -> tuple[pa.Array, list[ValueProblem]]:
    """The column as ingest types it, and the values it cannot hold as sent: text that is not Unicode,
    blank, or with surrounding blanks (ingest would keep it trimmed, or as null). Those are null in
    the array, so no other rule reports them again."""
    if rule.column.type == "date":  # a partition holds a date as its midnight, as `rows_to_frame` does
        values = [None if v is None else dt.datetime.combine(v, dt.time()) for v in values]
    problems = []
    if rule.column.type == "string":
        try:
            typed = pa.array(values, rule.arrow_type)
        except UnicodeEncodeError:  # a lone surrogate (JSON's "\ud800"): no UTF-8 text holds it
            bad = {n for n, v in enumerate(values) if v is not None and not _unicode(v)}
            problems += [
                _problem(n, rule, "string_unicode", "is not Unicode text (a lone surrogate)", values)
                for n in sorted(bad)
            ]
            typed = pa.array([None if n in bad else v for n, v in enumerate(values)], rule.arrow_type)
        stored = blank_to_null(typed)
        changed = pc.fill_null(pc.not_equal(stored, typed), True)
        for n in pc.indices_nonzero(pc.and_kleene(typed.is_valid(), changed)).to_pylist():
            if stored[n].is_valid:
                text = f"has blanks around it: send {shown(stored[n].as_py())} (ingest keeps it trimmed)"
                problems.append(_problem(n, rule, "string_blanks", text, values))
            elif rule.column.nullable:
                problems.append(_problem(n, rule, "string_blank", "is blank: send null for no value", values))
            else:  # ingest's words for a blank it cannot keep
                problems.append(_problem(n, rule, "is_empty", "is empty", values))
        if problems:
            bad = {p.row for p in problems}
            typed = pa.array([None if n in bad else v for n, v in enumerate(values)], rule.arrow_type)
        return typed, problems
    return pa.array(values, rule.arrow_type), problems


def _unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _problem(n: int, rule: ColumnRules, kind: str, message: str, values: list[Any]) -> ValueProblem:
    return ValueProblem(n, rule.name, kind, f"{shown(values[n])} {message}", values[n])


def arrow_schema(spec: UseCase) -> pa.Schema:
    """The Arrow schema of the feature columns, as an ingested partition types them."""
    return pa.schema([(name, ARROW_TYPES[spec.columns[name].type]) for name in spec.features.all])


def rows_to_frame(rows: Sequence[dict[str, Any]], spec: UseCase) -> pd.DataFrame:
    """The feature frame of validated rows, built as batch scoring builds a partition's (`to_frame`)."""
    schema = arrow_schema(spec)
    dates = [name for name in schema.names if spec.columns[name].type == "date"]
    records = [{name: row[name] for name in schema.names} for row in rows]
    for record in records:  # a partition holds a date as its midnight (include/ingest/validate.py)
        for name in dates:
            if record[name] is not None:
                record[name] = dt.datetime.combine(record[name], dt.time())
    return to_frame(pa.RecordBatch.from_pylist(records, schema), spec.entity_id)


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def probe_rows(spec: UseCase, count: int = 64) -> list[dict[str, Any]]:
    """Valid rows spread over every feature's allowed values, range ends and nulls (for self-checks)."""
    choices = {name: _choices(spec.columns[name]) for name in spec.features.all}
    return [
        {
            name: values[(n + k + (n // 7) * (k + 1)) % len(values)]
            for k, (name, values) in enumerate(choices.items())
        }
        for n in range(count)
    ]


def _choices(column: Column) -> list[Any]:
    if column.allowed:
        values: list[Any] = list(column.allowed)
    elif column.type in ("integer", "float"):
        low = column.min if column.min is not None else -100.0
        high = column.max if column.max is not None else low + 10_000.0
        values = [low, high, (low + high) / 2, low + 1, low + (high - low) / 7]
        if column.type == "integer":
            values = [int(v) for v in values]
    elif column.type == "boolean":
        values = [True, False]
    elif column.type == "string":
        values = ["probe"]
    else:
        values = [dt.datetime(2025, 1, 1, tzinfo=dt.UTC), dt.datetime(2025, 6, 30, 12, tzinfo=dt.UTC)]
    return [*values, None] if column.nullable else values


def frame_to_rows(frame: pd.DataFrame, spec: UseCase) -> list[dict[str, Any]]:
    """Rows of a partition frame as a client sends them: the features and the id, nulls as None."""
    columns = [spec.entity_id, *spec.features.all]
    plain = frame[columns].astype(object)
    return plain.where(frame[columns].notna(), None).to_dict("records")
