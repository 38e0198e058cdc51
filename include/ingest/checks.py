"""The checks a source's rows must pass, declared once per column from the spec, run on Arrow batches.

`column_rules` turns a spec `Column` into its conversion (text to the declared type) and its row
checks (allowed values, range, pattern, nulls); `check_batch` runs every column's rules on one batch
with Arrow's vectorised kernels and formats a reason only for the rows that fail. The reasons are
the ones the platform has always written: `MonthlyCharges: not a number: 'lots'`,
`Contract: 'Weekly' fails isin([...])`, `gender: is empty`; duplicate ids, which need the whole
day, are found by the caller (`duplicate_reason` gives their text). A reason quotes a value through
`shown`: at most `SHOWN_CHARS` characters of it, then an ellipsis and its length.

A float column's values must be finite and at most `FLOAT32_MAX` in magnitude (`FINITE_LABEL`): a
model's input may be float32 (scikit-learn's trees cast to it), where a larger value is infinite, and
scikit-learn refuses infinities with an error that names no column, row or day. `inf`, `1e309`
(infinite once parsed) and `1e300` are quarantined:
`MonthlyCharges: inf fails finite_float32(|x| <= 3.4028235e+38)`.
Integer columns need no such bound: int64's range is well inside float32's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from include.usecases.spec import Column

ARROW_TYPES = {
    "string": pa.large_string(),
    "integer": pa.int64(),
    "float": pa.float64(),
    "boolean": pa.bool_(),
    "date": pa.timestamp("us"),
    "datetime": pa.timestamp("us", tz="UTC"),
}
TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "float": "a number",
    "boolean": "a boolean",
    "date": "a date",
    "datetime": "a date-time",
}
BOOLEAN_WORDS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
# What Python's `str.strip()` removes: values are compared and typed without surrounding blanks.
WHITESPACE = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B)))
WHITESPACE += "\u2028\u2029\u202f\u205f\u3000"
# The decimal numbers (and inf / nan) that a number column accepts; anything else is "not a number".
NUMBER = r"(?i)^[+-]?((\d+\.?\d*|\.\d+)(e[+-]?\d+)?|inf(inity)?|nan)$"
INT64_LIMIT = 2.0**63
# The largest float32: a float column's bound in magnitude (module doc).
FLOAT32_MAX = float(np.finfo(np.float32).max)
FINITE_LABEL = f"finite_float32(|x| <= {FLOAT32_MAX:.8g})"
SHOWN_CHARS = 80  # of a value quoted in a reason
REASON_SEPARATOR = "; "  # between the reasons of one quarantined row
_QUOTED = r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\""
_QUOTED_OR_SEPARATOR = re.compile(rf"{_QUOTED}|{REASON_SEPARATOR}")
_SHOWN = rf"(?:{_QUOTED}|.+?)(?:\.\.\. \([\d,]+ characters\))?"
_KINDS = (
    (re.compile(r"(?P<column>[^:]+): not (?P<type>[^:]+): .*", re.S), "{column}: not {type}"),
    (re.compile(rf"(?P<column>[^:]+): {_SHOWN} fails (?P<check>.*)", re.S), "{column}: fails {check}"),
    (re.compile(r"(?P<column>[^:]+): duplicate id .*", re.S), "{column}: duplicate id"),
)


@dataclass(frozen=True)
class RowCheck:
    """One check on a typed column: its label in reasons and the rows (non-null values) it fails."""

    label: str
    fails: Callable[[pa.Array], pa.Array]


@dataclass(frozen=True)
class ColumnRules:
    """Everything one column of a source is checked against, from its spec entry."""

    name: str
    column: Column
    checks: tuple[RowCheck, ...] = field(default=())
    # The allowed values as an Arrow array, and their check's label; values are coded by position in it.
    allowed: pa.Array | None = None
    allowed_label: str = ""

    @property
    def arrow_type(self) -> pa.DataType:
        return ARROW_TYPES[self.column.type]

    def coerce(self, values: pa.Array) -> tuple[pa.Array, pa.Array]:
        """The values in the declared type, and a mask of the values present that could not be typed."""
        raw = blank_to_null(values)
        kind = self.column.type
        if kind == "string":
            typed = raw.cast(pa.large_string())
        elif kind in ("integer", "float"):
            typed = _to_number(raw, integer=kind == "integer")
        elif kind == "boolean":
            words = pa.array(list(BOOLEAN_WORDS))
            found = pc.index_in(pc.utf8_lower(raw.cast(pa.large_string())), words)
            typed = pa.array(list(BOOLEAN_WORDS.values())).take(found)
        else:
            typed = _to_timestamp(raw, self.arrow_type)
        failed = pc.and_(raw.is_valid(), typed.is_null())
        return typed, failed

    def coded(self, values: pa.Array) -> tuple[pa.Array, pa.Array, pa.Array | None]:
        """`coerce`'s typed values and failures, and each value's position among the allowed ones
        (null: not allowed, or null).

        Text columns with a set of allowed values (most of a tabular source) take a short cut: a value
        found in the set as it came needs no trimming, so only the others are trimmed and looked up.
        """
        if self.allowed is None:
            return *self.coerce(values), None
        text = pa.types.is_string(values.type) or pa.types.is_large_string(values.type)
        if self.column.type != "string" or not text or not _plain(self.allowed):
            typed, failed = self.coerce(values)
            return typed, failed, pc.index_in(typed, self.allowed)
        codes = pc.index_in(values, self.allowed)
        typed = values.cast(pa.large_string())
        others = pc.and_(values.is_valid(), codes.is_null())
        if pc.any(others).as_py():
            fixed = blank_to_null(typed.filter(others))
            typed = pc.replace_with_mask(typed, others, fixed)
            codes = pc.replace_with_mask(codes, others, pc.index_in(fixed, self.allowed))
        return typed, pa.repeat(pa.scalar(False), len(values)), codes


@dataclass(frozen=True)
class CheckedBatch:
    """One batch of a source: its typed columns and, per row, the reasons it fails (null: none).

    The reasons are split around the entity id's duplicate check, which only the whole day decides:
    a row's full reasons are `head`, then the duplicate reason if any, then `tail`.
    """

    typed: dict[str, pa.Array]
    codes: dict[str, pa.Array]
    head: pa.Array
    tail: pa.Array

    @property
    def num_rows(self) -> int:
        return len(self.head)


def _bound(column: Column, value: float, rounding: Callable[[float], int]) -> pa.Scalar | float:
    """A range bound as the column's values are compared with it. An integer column's bound is an
    integer (`min` rounded up, `max` down: the same rows pass), since Arrow refuses to compare an
    int64 beyond 2**53 with a float (`Integer value ... not in range`) and the day would fail."""
    if column.type != "integer":
        return value
    limit = np.iinfo(np.int64)
    return pa.scalar(min(max(rounding(value), limit.min), limit.max), pa.int64())


def column_rules(name: str, column: Column) -> ColumnRules:
    """The conversion and row checks a spec column declares, in the order reasons list them."""
    checks = []
    if column.type == "float":
        # Not finite, or beyond float32: NaN never reaches here (it is "not a number").
        checks.append(RowCheck(FINITE_LABEL, lambda a: pc.invert(pc.less_equal(pc.abs(a), FLOAT32_MAX))))
    if column.min is not None:
        low = _bound(column, column.min, math.ceil)
        checks.append(RowCheck(f"greater_than_or_equal_to({column.min})", lambda a: pc.less(a, low)))
    if column.max is not None:
        high = _bound(column, column.max, math.floor)
        checks.append(RowCheck(f"less_than_or_equal_to({column.max})", lambda a: pc.greater(a, high)))
    if column.pattern is not None:
        # Anchored at the start only, as Python's `re.match`.
        pattern = f"^(?:{column.pattern})"
        checks.append(
            RowCheck(
                f"str_matches('{column.pattern}')",
                lambda a: pc.invert(pc.match_substring_regex(a, pattern)),
            )
        )
    if column.allowed is None:
        return ColumnRules(name, column, tuple(checks))
    return ColumnRules(name, column, tuple(checks), value_set(column), f"isin({list(column.allowed)})")


def source_rules(columns: dict[str, Column]) -> list[ColumnRules]:
    """Every column's rules, in the source's column order."""
    return [column_rules(name, column) for name, column in columns.items()]


def blank_to_null(values: pa.Array) -> pa.Array:
    """Text without surrounding blanks, a blank value as null; other types as they are."""
    if pa.types.is_null(values.type):
        return values.cast(pa.large_string())
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        return values
    text = pc.utf8_trim(values, WHITESPACE)
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, text.type), text)


def shown(value: object) -> str:
    """A value as a reason quotes it: its `repr`, cut to `SHOWN_CHARS` characters with its length.

    A text is cut before it is quoted, so the quotes always close: `split_reasons` relies on it.
    """
    text = repr(value)
    if len(text) <= SHOWN_CHARS:
        return text
    if isinstance(value, str | bytes):
        return f"{value[: SHOWN_CHARS - 2]!r}... ({len(value):,} characters)"
    return f"{text[:SHOWN_CHARS]}... ({len(text):,} characters)"


def duplicate_reason(entity_id: str, value: str) -> str:
    """The reason given to every row of a day whose entity id appears more than once."""
    return f"{entity_id}: duplicate id {shown(value)}"


def split_reasons(text: str) -> list[str]:
    """A quarantined row's reasons, split at the `REASON_SEPARATOR`s outside quoted values (a value
    such as `Male'; DROP TABLE x;--` holds the separator)."""
    reasons, start = [], 0
    for match in _QUOTED_OR_SEPARATOR.finditer(text):
        if match.group() == REASON_SEPARATOR:
            reasons.append(text[start : match.start()])
            start = match.end()
    reasons.append(text[start:])
    return reasons


def reason_kind(reason: str) -> str:
    """A reason without the value it quotes, so that rows failing one check count together:
    `tenure: not an integer: 'x'` -> `tenure: not an integer`, `Contract: 'Weekly' fails isin([...])`
    -> `Contract: fails isin([...])`, `customerID: duplicate id '7590'` -> `customerID: duplicate id`."""
    for pattern, kind in _KINDS:
        if found := pattern.match(reason):
            return kind.format(**found.groupdict())
    return reason


def check_batch(batch: pa.RecordBatch, rules: list[ColumnRules], entity_id: str) -> CheckedBatch:
    """Type and check every row of one batch; reasons are formatted only for the rows that fail."""
    typed, untyped, codes, failing = {}, {}, {}, []
    for rule in rules:
        typed[rule.name], untyped[rule.name], coded = rule.coded(batch.column(rule.name))
        failing.append(untyped[rule.name])
        present = typed[rule.name].is_valid()
        if not rule.column.nullable:
            failing.append(pc.and_(pc.invert(present), pc.invert(untyped[rule.name])))
        if coded is not None:
            codes[rule.name] = coded
            failing.append(pc.and_(present, coded.is_null()))
        for check in rule.checks:
            failing.append(pc.and_kleene(present, check.fails(typed[rule.name])))
    any_failure = _any(failing, batch.num_rows)
    rows = pc.indices_nonzero(any_failure).to_pylist()
    head, tail = [None] * len(rows), [None] * len(rows)
    if rows:
        _describe(batch, rules, entity_id, typed, untyped, rows, head, tail)
    return CheckedBatch(typed, codes, _scattered(any_failure, head), _scattered(any_failure, tail))


def _scattered(mask: pa.Array, reasons: list[str | None]) -> pa.Array:
    """The reasons of the rows `mask` picks, in order, at their rows; null at every other row.

    Built from Arrow nulls, not a Python list of the batch's length: boxing a null per row cost
    more than checking the batch.
    """
    empty = pa.nulls(len(mask), pa.large_string())
    if not reasons:
        return empty
    return pc.replace_with_mask(empty, mask, pa.array(reasons, pa.large_string()))


def _describe(
    batch: pa.RecordBatch,
    rules: list[ColumnRules],
    entity_id: str,
    typed: dict[str, pa.Array],
    untyped: dict[str, pa.Array],
    rows: list[int],
    head: list[str | None],
    tail: list[str | None],
) -> None:
    """Fill `head` and `tail` (one entry per failing row, in `rows`' order): typing failures first,
    then each column's checks."""
    index = pa.array(rows, pa.int64())
    raw = {r.name: batch.column(r.name).take(index).to_pylist() for r in rules}
    values = {r.name: typed[r.name].take(index).to_pylist() for r in rules}
    failed = {r.name: untyped[r.name].take(index).to_pylist() for r in rules}
    outcomes = {r.name: _outcomes(r, typed[r.name].take(index)) for r in rules}
    for k in range(len(rows)):
        typing = [
            f"{r.name}: not {TYPE_NAMES[r.column.type]}: {shown(raw[r.name][k])}"
            for r in rules
            if failed[r.name][k]
        ]
        before, after, seen_id = [], [], False
        for r in rules:
            seen_id = seen_id or r.name == entity_id
            value = values[r.name][k]
            if value is None:
                if not failed[r.name][k] and not r.column.nullable:
                    (before if not seen_id or r.name == entity_id else after).append(f"{r.name}: is empty")
                continue
            reasons = [
                f"{r.name}: {shown(value)} fails {label}" for label, fail in outcomes[r.name] if fail[k]
            ]
            (after if seen_id else before).extend(reasons)
        head[k] = REASON_SEPARATOR.join(typing + before) or None
        tail[k] = REASON_SEPARATOR.join(after) or None


def _outcomes(rule: ColumnRules, values: pa.Array) -> list[tuple[str, list[bool]]]:
    """Each check's label and which of `values` fail it, in the order reasons list them."""
    outcomes = []
    if rule.allowed is not None:
        outcomes.append((rule.allowed_label, pc.invert(pc.is_in(values, rule.allowed)).to_pylist()))
    for check in rule.checks:
        outcomes.append((check.label, pc.fill_null(check.fails(values), False).to_pylist()))
    return outcomes


def _plain(values: pa.Array) -> bool:
    """Whether every text value is non-blank and free of surrounding blanks (so needs no trimming)."""
    return all(v and v == v.strip(WHITESPACE) for v in values.to_pylist())


def _any(masks: list[pa.Array], n: int) -> pa.Array:
    result = pa.repeat(pa.scalar(False), n)
    for mask in masks:
        result = pc.or_(result, pc.fill_null(mask, False))
    return result


def value_set(column: Column) -> pa.Array:
    """The allowed values a typed column can hold (a text value never equals a number, as in Python)."""
    kind = column.type
    if kind == "string":
        keep = [v for v in column.allowed if isinstance(v, str)]
    elif kind == "boolean":
        keep = [v for v in column.allowed if isinstance(v, bool)]
    elif kind in ("integer", "float"):
        keep = [v for v in column.allowed if isinstance(v, int | float) and not isinstance(v, bool)]
        keep = [v for v in keep if kind == "float" or float(v).is_integer()]
    else:
        keep = list(column.allowed)
    return pa.array(keep, ARROW_TYPES[kind])


def _to_number(raw: pa.Array, *, integer: bool) -> pa.Array:
    if pa.types.is_integer(raw.type):
        return raw.cast(pa.int64() if integer else pa.float64())
    if pa.types.is_floating(raw.type):
        numbers = raw.cast(pa.float64())
    else:
        numbers = _parsed(raw.cast(pa.large_string()))
    # NaN is no number; for an integer column neither is inf, a fraction, or a value beyond int64.
    bad = pc.is_nan(numbers)
    if not integer:
        return pc.if_else(bad, pa.scalar(None, pa.float64()), numbers)
    bad = pc.or_(bad, pc.or_(pc.is_inf(numbers), pc.not_equal(pc.floor(numbers), numbers)))
    bad = pc.or_(bad, pc.greater_equal(pc.abs(numbers), INT64_LIMIT))
    return pc.if_else(bad, pa.scalar(None, pa.float64()), numbers).cast(pa.int64(), safe=False)


def _parsed(text: pa.Array) -> pa.Array:
    """Text as float64, null where it is no `NUMBER`.

    Arrow's cast takes every `NUMBER` and, beyond them, only `nan(...)`, NaN like `nan` itself: a
    batch it takes whole needs no regex (the usual batch); one with a value it refuses is matched.
    """
    try:
        return text.cast(pa.float64())
    except pa.ArrowInvalid:
        parsable = pc.match_substring_regex(text, NUMBER)
        return pc.if_else(parsable, text, pa.scalar(None, text.type)).cast(pa.float64())


def _to_timestamp(raw: pa.Array, arrow_type: pa.DataType) -> pa.Array:
    if pa.types.is_timestamp(raw.type) or pa.types.is_date(raw.type):
        return raw.cast(arrow_type)
    import pandas as pd

    parsed = pd.to_datetime(
        raw.cast(pa.large_string()).to_pandas(),
        errors="coerce",
        format="ISO8601",
        utc=arrow_type.tz is not None,
    )
    return pa.array(parsed, arrow_type, from_pandas=True)
