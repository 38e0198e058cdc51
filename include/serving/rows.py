"""A use case's request rows: the pydantic models built from its spec, and rows → the batch path's frame.

The request schema follows the spec's `columns` for each feature (and the optional entity id): its
type, allowed values, range and pattern, and whether it may be null. A field is always required
(a nullable one may be `null`), an unknown field is refused, and a value is not coerced across types
(`"12"` is not a number, `true` is not 1): the 422 answer names the row and the field.

`rows_to_frame` turns validated rows into exactly the frame batch scoring gives the pipeline: the
rows become an Arrow batch with the partition's types, then `include.scoring.score.to_frame` (text
features as categoricals) — one conversion, so the same row gives the same floats online and in batch.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import pandas as pd
import pyarrow as pa
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, create_model
from pydantic_core import PydanticCustomError

from include.ingest.checks import ARROW_TYPES  # what an ingested partition holds
from include.scoring.score import to_frame
from include.usecases.spec import Column, UseCase


def _one_of(allowed: tuple[Any, ...]):
    expected = " or ".join(repr(v) for v in allowed)

    def check(value: Any) -> Any:
        if value not in allowed:
            raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": expected})
        return value

    return AfterValidator(check)


def field_type(column: Column) -> Any:
    """The pydantic type of one spec column: its type, allowed values, range, pattern and nullability."""
    bounds = {"ge": column.min, "le": column.max}
    if column.type == "string":
        kind: Any = (
            Literal[column.allowed]  # type: ignore[valid-type]
            if column.allowed
            else Annotated[str, Field(strict=True, pattern=column.pattern)]
        )
    elif column.type == "integer":
        kind = Annotated[StrictInt, Field(**bounds)]
    elif column.type == "float":
        kind = Annotated[float, Field(strict=True, allow_inf_nan=False, **bounds)]
    elif column.type == "boolean":
        kind = StrictBool
    elif column.type == "date":
        kind = dt.date
    else:
        kind = dt.datetime
    if column.allowed and column.type != "string":
        kind = Annotated[
            kind, _one_of(column.allowed), Field(json_schema_extra={"enum": list(column.allowed)})
        ]
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
