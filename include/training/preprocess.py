"""The feature pipeline of a use case, built from its spec, and the split of a frame into X and y.

Every transform lives inside one `ColumnTransformer`, so it is fitted on the training rows only and
travels with the model. The helper functions are module-level (not lambdas) so that the model file's
loader can trust them by name (see `include.registry.model_files.TRUSTED_TYPES`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from include.usecases.expressions import Node, parse
from include.usecases.spec import UseCase, one_vs_rest_refusal

logger = logging.getLogger(__name__)

_TRUE = frozenset({"yes", "true", "1", "1.0"})
_FALSE = frozenset({"no", "false", "0", "0.0"})
DATE_PARTS = ("year", "month", "dayofweek", "dayofyear")


def to_numeric(X: pd.DataFrame) -> pd.DataFrame:
    """Coerce every column to float; text that is not a number (such as a blank) becomes NaN."""
    return pd.DataFrame(X).apply(pd.to_numeric, errors="coerce").astype(float)


def binary_flag(value: object) -> float:
    if isinstance(value, (bool, np.bool_)):
        return float(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value) if value in (0, 1) else np.nan
    text = str(value).strip().lower()
    return 1.0 if text in _TRUE else 0.0 if text in _FALSE else np.nan


def _flags(column: pd.Series) -> pd.Series:
    # `binary_flag` runs once per distinct value (a column holds a few spellings), then a take.
    codes, uniques = pd.factorize(column)
    flags = np.array([*map(binary_flag, uniques), np.nan], dtype=float)
    return pd.Series(flags[codes], index=column.index, name=column.name)


def to_binary(X: pd.DataFrame) -> pd.DataFrame:
    """Map Yes/No, True/False and 1/0 (text or numbers, any case) to 1.0/0.0; anything else to NaN."""
    return pd.DataFrame(X).apply(_flags).astype(float)


def date_parts(X: pd.DataFrame) -> pd.DataFrame:
    """Year, month, day of week and day of year of each datetime column, as floats (NaN when missing)."""
    frame = pd.DataFrame(X)
    parts = {}
    for name, column in frame.items():
        moments = pd.to_datetime(column, errors="coerce", format="mixed")
        for part in DATE_PARTS:
            parts[f"{name}_{part}"] = getattr(moments.dt, part).astype(float)
    return pd.DataFrame(parts, index=frame.index)


def date_part_names(transformer: FunctionTransformer, input_features: np.ndarray) -> np.ndarray:
    """Output names of `date_parts`, for `get_feature_names_out`."""
    return np.asarray([f"{name}_{part}" for name in input_features for part in DATE_PARTS], dtype=object)


def missing_names(transformer: FunctionTransformer, input_features: np.ndarray) -> np.ndarray:
    """`<name>_missing` for each column a `MissingIndicator` flags (it says `missingindicator_<name>`)."""
    return np.asarray(
        [f"{str(name).removeprefix('missingindicator_')}_missing" for name in input_features], dtype=object
    )


def _indicators(first: tuple[str, TransformerMixin]) -> Pipeline:
    """`first`, then a 0/1 column `<name>_missing` per column that had a missing value in training.

    A column with none in training gets no indicator (a missing value at scoring is imputed, not
    flagged: the model never learned what a flag would mean).
    """
    return Pipeline(
        [
            first,
            ("indicate", MissingIndicator(features="missing-only", error_on_new=False)),
            ("name", FunctionTransformer(feature_names_out=missing_names)),
        ]
    )


class DerivedFeatures(TransformerMixin, BaseEstimator):
    """The spec's derived features (`features.derived`), computed from their input columns.

    Stateless: it keeps the expressions as text (so the model file holds plain strings, and the
    loader trusts this class by name); the imputer and scaler after it are what is fitted. A result
    that is not a finite number (a ratio over 0, a log of 0 or below, a sentinel declared missing, a
    comparison with a missing value) is NaN, which the pipeline's median imputer fills with the
    training rows' median and its missing indicator flags.

    Args:
        expressions: derived feature name -> expression (include/usecases/expressions.py).
    """

    def __init__(self, expressions: dict[str, str] | None = None) -> None:
        self.expressions = expressions

    def fit(self, X: pd.DataFrame, y: object = None) -> DerivedFeatures:
        """Check the inputs are there; nothing is learned."""
        self._values(X)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """One float column per derived feature, in the spec's order."""
        return self._values(X)

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        """The derived features' names."""
        return np.asarray(list(self.expressions or {}), dtype=object)

    def _values(self, X: pd.DataFrame) -> pd.DataFrame:
        frame = pd.DataFrame(X)
        out = {}
        # A domain error (log or sqrt of a negative, 0 / 0, an overflow) is NaN, not a warning per call.
        with np.errstate(all="ignore"):
            for name, text in (self.expressions or {}).items():
                values = np.asarray(_evaluate(parse(text), frame), dtype="float64") * np.ones(len(frame))
                out[name] = np.where(np.isfinite(values), values, np.nan)
        return pd.DataFrame(out, index=frame.index)


Values = np.ndarray | float


def _truth(values: Values) -> Values:
    """1.0 where a value is not 0, 0.0 where it is, NaN where it is missing."""
    values = np.asarray(values, dtype="float64")
    return np.where(np.isnan(values), np.nan, values != 0)


def _compared(compare: np.ufunc) -> Callable[[Values, Values], Values]:
    def flag(left: Values, right: Values) -> Values:
        return np.where(np.isnan(left) | np.isnan(right), np.nan, compare(left, right))

    return flag


def _and(left: Values, right: Values) -> Values:
    return _truth(left) * _truth(right)  # 1 * 1 is 1, a 0 makes 0, a NaN makes NaN


def _or(left: Values, right: Values) -> Values:
    return np.maximum(_truth(left), _truth(right))  # np.maximum keeps a NaN


def _not(values: Values) -> Values:
    return 1.0 - _truth(values)


def _where(condition: Values, chosen: Values, other: Values) -> Values:
    truth = _truth(condition)
    return np.where(np.isnan(truth), np.nan, np.where(truth == 1.0, chosen, other))


# Each node kind of include/usecases/expressions.py but a number or a column: its values from its
# children's (and its own numbers: clip's bounds). min and max are NaN when either side is.
_OPERATIONS: dict[str, Callable[..., Values]] = {
    "neg": np.negative,
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": np.divide,
    "abs": np.abs,
    "ceil": np.ceil,
    "exp": np.exp,
    "floor": np.floor,
    "log": np.log,
    "log1p": np.log1p,
    "sign": np.sign,
    "sqrt": np.sqrt,
    "min": np.minimum,
    "max": np.maximum,
    "clip": np.clip,
    "<": _compared(np.less),
    "<=": _compared(np.less_equal),
    ">": _compared(np.greater),
    ">=": _compared(np.greater_equal),
    "==": _compared(np.equal),
    "!=": _compared(np.not_equal),
    "and": _and,
    "or": _or,
    "not": _not,
    "where": _where,
}


def _evaluate(node: Node, frame: pd.DataFrame) -> Values:
    """The values of an expression tree over the frame's rows (a float when it reads no column).

    In between, arithmetic is IEEE's (a ratio over 0 is infinite until the result is made NaN), so a
    registered model's derived features keep the values they were trained with.
    """
    kind = node[0]
    if kind == "num":
        return node[1]
    if kind in ("col", "missing"):
        if node[1] not in frame.columns:
            raise ValueError(f"derived feature input column {node[1]!r} is missing from the frame")
        values = pd.to_numeric(frame[node[1]], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        return np.where(values == node[2], np.nan, values) if kind == "missing" else values
    arguments = [_evaluate(child, frame) if isinstance(child, tuple) else child for child in node[1:]]
    return _OPERATIONS[kind](*arguments)


def build_preprocessor(spec: UseCase) -> ColumnTransformer:
    """The unfitted column transformer for the spec's features.

    Numeric: text coerced to float, median imputation, standard scaling. Derived
    (`features.derived`): computed from their inputs by `DerivedFeatures`, then median imputation and
    standard scaling, so the medians and scales are the training rows'. Categorical: most-frequent
    imputation, one-hot encoding that ignores categories unseen in training. Boolean: mapped to 0/1,
    most-frequent imputation. Datetime: year, month, day of week and day of year, median imputation,
    standard scaling. Columns not named in the spec are dropped.

    Missing indicators, after those groups (so the other columns keep their places): a numeric or
    derived feature that had a missing value in the training rows also gets a 0/1 column
    `<name>_missing` (groups `numeric_missing` and `derived_missing`), so a model can tell an imputed
    median from an observed one.
    """
    features = spec.features
    groups = [
        (
            "numeric",
            Pipeline(
                [
                    ("to_float", FunctionTransformer(to_numeric, feature_names_out="one-to-one")),
                    ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                    ("scale", StandardScaler()),
                ]
            ),
            list(features.numeric),
        ),
        (
            "categorical",
            Pipeline(
                [
                    ("impute", SimpleImputer(strategy="most_frequent", keep_empty_features=True)),
                    ("one_hot", OneHotEncoder(handle_unknown="ignore")),
                ]
            ),
            list(features.categorical),
        ),
        (
            "boolean",
            Pipeline(
                [
                    ("to_binary", FunctionTransformer(to_binary, feature_names_out="one-to-one")),
                    ("impute", SimpleImputer(strategy="most_frequent", keep_empty_features=True)),
                ]
            ),
            list(features.boolean),
        ),
        (
            "datetime",
            Pipeline(
                [
                    ("parts", FunctionTransformer(date_parts, feature_names_out=date_part_names)),
                    ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                    ("scale", StandardScaler()),
                ]
            ),
            list(features.datetime),
        ),
        (
            "derived",
            Pipeline(
                [
                    ("derive", DerivedFeatures(dict(features.derived))),
                    ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                    ("scale", StandardScaler()),
                ]
            ),
            list(features.inputs),
        ),
        (
            "numeric_missing",
            _indicators(("to_float", FunctionTransformer(to_numeric, feature_names_out="one-to-one"))),
            list(features.numeric),
        ),
        (
            "derived_missing",
            _indicators(("derive", DerivedFeatures(dict(features.derived)))),
            list(features.inputs),
        ),
    ]
    # Always dense: gradient boosting refuses a sparse matrix, which many one-hot columns (a text
    # column of hundreds of values) would otherwise give.
    return ColumnTransformer([group for group in groups if group[2]], remainder="drop", sparse_threshold=0)


def label_classes(spec: UseCase, frame: pd.DataFrame | None = None) -> tuple[object, ...] | None:
    """A multiclass label's classes in the order every model reports them: `label.classes`, else
    the column's `allowed` values, else the values `frame` holds, each sorted; None for another task.

    Raises:
        ValueError: when the order comes from `frame` and it has none, or fewer than two values.
    """
    if spec.task != "multiclass":
        return None
    if spec.label.classes is not None:
        return tuple(spec.label.classes)
    allowed = spec.columns[spec.label.column].allowed
    if allowed is not None:
        return tuple(sorted(set(allowed), key=str))
    if frame is None:
        raise ValueError(f"{spec.name}: the label's classes come from the training rows; none given")
    return tuple(sorted(frame[spec.label.column].dropna().unique().tolist(), key=str))


def check_label(frame: pd.DataFrame, spec: UseCase) -> None:
    """Refuse a window whose label cannot be the spec's label for its task; say when it is cut.

    Raises:
        ValueError: binary: naming `label.positive` and the column, when the positive value never
            occurs (a typo: `"yes"` for `"Yes"`), or when the label has more than two values and
            the spec does not declare the cut (`label.one_vs_rest`). multiclass: fewer than two
            classes, or a value outside `label.classes`. regression: MAPE gated on a label that is
            not always positive, or a log-scale label below 0.
    """
    label = spec.label
    if spec.task == "regression":
        _check_number_label(frame[label.column], spec)
        return
    values = sorted(frame[label.column].dropna().unique().tolist(), key=str)
    shown = f"{values[:10]}{' ...' if len(values) > 10 else ''}"
    if spec.task == "multiclass":
        classes = label_classes(spec, frame)
        outside = [v for v in values if v not in classes]
        if outside:
            raise ValueError(
                f"{spec.name}: `label.classes` {list(classes)} lacks {outside[:10]}, found in the label "
                f"column {label.column!r} of the window"
            )
        if len(values) < 2:
            raise ValueError(
                f"{spec.name}: the label {label.column!r} holds one class in the window: {values}"
            )
        absent = [c for c in classes if c not in values]
        if absent:
            logger.warning("%s: no training row of class(es) %s in the window", spec.name, absent)
        return
    where = f"{spec.name}: `label.positive`"
    if label.positive not in values:
        raise ValueError(
            f"{where} {label.positive!r} is not a value of the label column {label.column!r} in the "
            f"window (its values: {shown})"
        )
    if len(values) > 2:
        if not label.one_vs_rest:
            raise ValueError(f"{spec.name}: `label.positive`: {one_vs_rest_refusal(label, values)}")
        logger.warning(
            "%s: the label %r has %d values; trained as %r against the other %d (label.one_vs_rest)",
            spec.name,
            label.column,
            len(values),
            label.positive,
            len(values) - 1,
        )


def _check_number_label(values: pd.Series, spec: UseCase) -> None:
    numbers = pd.to_numeric(values, errors="coerce").dropna()
    gated = {spec.gate.primary, *spec.gate.guardrails}
    if "mape" in gated and (numbers <= 0).any():
        raise ValueError(
            f"{spec.name}: gate metric mape divides by the label; {int((numbers <= 0).sum())} row(s) of "
            f"{spec.label.column!r} are 0 or below: gate on rmse or mae instead"
        )
    if spec.label.log_scale and (numbers < 0).any():
        raise ValueError(
            f"{spec.name}: `label.log_scale` models log(1 + {spec.label.column}); "
            f"{int((numbers < 0).sum())} row(s) are below 0"
        )


def split_xy(
    frame: pd.DataFrame, spec: UseCase, classes: Sequence[object] | None = None
) -> tuple[pd.DataFrame, pd.Series]:
    """The spec's feature columns and the label as the models learn it: binary, 1 for the positive
    value else 0; multiclass, the index of the row's class in `classes`; regression, the number.

    Raises:
        ValueError: naming the columns the frame lacks, the label's missing values, or (multiclass)
            a label value not in `classes`.
    """
    label = spec.label.column
    missing = [name for name in (*spec.features.all, label) if name not in frame.columns]
    if missing:
        raise ValueError(f"{spec.name}: the frame lacks the column(s) {missing}")
    unlabelled = int(frame[label].isna().sum())
    if unlabelled:
        raise ValueError(f"{spec.name}: the label {label!r} is missing on {unlabelled} row(s)")
    X = frame[list(spec.features.all)]
    if spec.task == "regression":
        return X, pd.to_numeric(frame[label]).astype(float).rename(label)
    if spec.task == "multiclass":
        order = tuple(label_classes(spec, frame) if classes is None else classes)
        codes = pd.Series(pd.Categorical(frame[label], categories=order).codes, index=frame.index, name=label)
        unknown = frame.loc[codes < 0, label].unique().tolist()
        if unknown:
            raise ValueError(
                f"{spec.name}: label value(s) {unknown[:10]} are not among the classes {list(order)}"
            )
        return X, codes.astype(int)
    y = (frame[label] == spec.label.positive).astype(int).rename(label)
    return X, y
