"""A fast path for a few rows: the fitted feature pipeline compiled to plain numpy, the same estimator.

For one row, scikit-learn's `ColumnTransformer` costs milliseconds in pandas overhead (a frame per
group, `apply` per column), against microseconds of arithmetic. `compile_pipeline` reads the fitted
preprocessor's learned values (imputation fills, scaling, one-hot categories) and builds the same
matrix from the request's rows directly, in the same float64 operations in the same order; the fitted
estimator then scores that matrix as it would scikit-learn's. The float results are those of the
pipeline: `check_against` compares both (features and scores) on probe rows before a compiled model
is used.

Only the steps `include.training.preprocess.build_preprocessor` makes are compiled (numeric: to float,
median fill, scaling, and the missing indicators of the numeric features; categorical: most-frequent
fill, one-hot ignoring unknown values; boolean: 0/1 mapping, most-frequent fill); a random
forest's trees are walked all at once (`_Forest`) and a logistic regression is one product
(`_Linear`), skipping scikit-learn's input checks (~0.1 ms a call); other estimators score the
compiled matrix themselves. Anything else (a datetime feature, a derived feature and its indicator, another
transformer) raises `CompileError`, and the service keeps the scikit-learn path.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from scipy import sparse
from scipy.special import expit
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from include.training.preprocess import binary_flag, missing_names, to_binary, to_numeric

log = logging.getLogger(__name__)

Rows = Sequence[dict[str, Any]]


class CompileError(ValueError):
    """A fitted pipeline this module does not compile (the scikit-learn path serves it instead)."""


class _Block(Protocol):
    width: int

    def transform(self, rows: Rows) -> np.ndarray: ...


class _Estimator(Protocol):
    def predict_proba(self, X: np.ndarray) -> np.ndarray: ...


def _steps(pipeline: Any, expected: tuple[type, ...]) -> list[Any]:
    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != len(expected):
        raise CompileError(f"expected a pipeline of {[t.__name__ for t in expected]}, got {pipeline!r}")
    steps = [step for _, step in pipeline.steps]
    for step, kind in zip(steps, expected, strict=True):
        if type(step) is not kind:
            raise CompileError(f"expected {kind.__name__}, got {type(step).__name__}")
    return steps


def _fill(imputer: SimpleImputer) -> np.ndarray:
    """The imputer's fill values, when it fills NaN/None and nothing else."""
    missing = imputer.missing_values
    if imputer.add_indicator or not (isinstance(missing, float) and np.isnan(missing)):
        raise CompileError("an imputer with an indicator or non-NaN missing values")
    fill = imputer.statistics_
    if any(value is None or (isinstance(value, float) and np.isnan(value)) for value in fill):
        raise CompileError("an imputer with a feature empty in training")
    return fill


def _function(step: FunctionTransformer, func: Any) -> None:
    if step.func is not func or step.kw_args or step.validate:
        raise CompileError(f"expected FunctionTransformer({func.__name__})")


@dataclass(frozen=True)
class _Numeric:
    columns: tuple[str, ...]
    fill: np.ndarray
    mean: np.ndarray | None
    scale: np.ndarray | None

    @property
    def width(self) -> int:
        return len(self.columns)

    def transform(self, rows: Rows) -> np.ndarray:
        # None becomes NaN; ints become floats exactly as `to_numeric` makes them.
        X = np.array([[row[c] for c in self.columns] for row in rows], dtype=np.float64)
        X = np.where(np.isnan(X), self.fill, X)
        if self.mean is not None:
            X -= self.mean
        if self.scale is not None:
            X /= self.scale
        return X


@dataclass(frozen=True)
class _OneHot:
    columns: tuple[str, ...]
    fill: tuple[Any, ...]
    positions: tuple[dict[Any, int], ...]
    width: int

    def transform(self, rows: Rows) -> np.ndarray:
        X = np.zeros((len(rows), self.width))
        for r, row in enumerate(rows):
            for j, column in enumerate(self.columns):
                value = row[column]
                at = self.positions[j].get(self.fill[j] if value is None else value)
                if at is not None:  # an unknown value sets no column (handle_unknown="ignore")
                    X[r, at] = 1.0
        return X


# A boolean column holds a few spellings (and `binary_flag` is a pure function of the value).
_flag = functools.lru_cache(maxsize=1024)(binary_flag)


@dataclass(frozen=True)
class _Boolean:
    columns: tuple[str, ...]
    fill: np.ndarray

    @property
    def width(self) -> int:
        return len(self.columns)

    def transform(self, rows: Rows) -> np.ndarray:
        X = np.array([[_flag(row[c]) for c in self.columns] for row in rows], dtype=np.float64)
        return np.where(np.isnan(X), self.fill, X)


@dataclass(frozen=True)
class _Missing:
    """`MissingIndicator(features="missing-only")`: 1.0 where a flagged column is null, else 0.0."""

    columns: tuple[str, ...]  # the columns flagged, in the indicator's order

    @property
    def width(self) -> int:
        return len(self.columns)

    def transform(self, rows: Rows) -> np.ndarray:
        X = np.array([[row[c] for c in self.columns] for row in rows], dtype=np.float64)
        return np.isnan(X.reshape(len(rows), self.width)).astype(np.float64)


def _numeric(group: Pipeline, columns: tuple[str, ...]) -> _Numeric:
    to_float, imputer, scaler = _steps(group, (FunctionTransformer, SimpleImputer, StandardScaler))
    _function(to_float, to_numeric)
    return _Numeric(
        columns,
        _fill(imputer).astype(np.float64),
        scaler.mean_ if scaler.with_mean else None,
        scaler.scale_ if scaler.with_std else None,
    )


def _categorical(group: Pipeline, columns: tuple[str, ...]) -> _OneHot:
    imputer, encoder = _steps(group, (SimpleImputer, OneHotEncoder))
    if encoder.handle_unknown != "ignore" or encoder.drop_idx_ is not None or encoder._infrequent_enabled:
        raise CompileError("a one-hot encoder that drops, groups infrequent or errors on unknown values")
    positions, offset = [], 0
    for categories in encoder.categories_:
        positions.append({value: offset + n for n, value in enumerate(categories.tolist())})
        offset += len(categories)
    return _OneHot(columns, tuple(_fill(imputer).tolist()), tuple(positions), offset)


def _boolean(group: Pipeline, columns: tuple[str, ...]) -> _Boolean:
    to_flags, imputer = _steps(group, (FunctionTransformer, SimpleImputer))
    _function(to_flags, to_binary)
    return _Boolean(columns, _fill(imputer).astype(np.float64))


def _numeric_missing(group: Pipeline, columns: tuple[str, ...]) -> _Missing:
    to_float, indicator, names = _steps(group, (FunctionTransformer, MissingIndicator, FunctionTransformer))
    _function(to_float, to_numeric)
    missing = indicator.missing_values
    if (
        not (isinstance(missing, float) and np.isnan(missing))
        or indicator.features != "missing-only"
        or indicator.sparse not in ("auto", False)
        or indicator.error_on_new
        or names.func is not None
        or names.feature_names_out is not missing_names
    ):
        raise CompileError(f"a missing indicator other than build_preprocessor's: {indicator!r}")
    return _Missing(tuple(columns[i] for i in indicator.features_))


_GROUPS = {
    "numeric": _numeric,
    "categorical": _categorical,
    "boolean": _boolean,
    "numeric_missing": _numeric_missing,
}


@dataclass(frozen=True)
class _Forest:
    """A binary random forest's trees as flat arrays, walked for every row and tree at once.

    scikit-learn walks one tree at a time (a joblib task each, ~15 µs of overhead per tree per call)
    and sums the trees' leaf fractions in tree order; this walks all trees in one vectorised loop per
    level, compares float32 features with the float64 thresholds as the trees do, and sums the leaf
    values in the same order (`cumsum` is sequential), so the result is the same to the last bit.
    """

    feature: np.ndarray
    threshold: np.ndarray
    children: np.ndarray  # node n's left child at 2n, its right child at 2n + 1
    value: np.ndarray
    roots: np.ndarray
    depth: int

    @classmethod
    def of(cls, forest: RandomForestClassifier) -> _Forest:
        if forest.n_outputs_ != 1 or forest.classes_.tolist() != [0, 1]:
            raise CompileError("a forest that is not a single binary 0/1 output")
        features, thresholds, children, values, roots = [], [], [], [], []
        offset, depth = 0, 0
        for tree in (estimator.tree_ for estimator in forest.estimators_):
            leaf = tree.children_left < 0
            own = np.arange(offset, offset + tree.node_count)
            features.append(np.where(leaf, 0, tree.feature))
            thresholds.append(tree.threshold)
            # A leaf points to itself, so walking every tree for `depth` levels stays on it.
            left = np.where(leaf, own, tree.children_left + offset)
            right = np.where(leaf, own, tree.children_right + offset)
            children.append(np.stack([left, right], axis=1).ravel())
            values.append(tree.value[:, 0, 1])
            roots.append(offset)
            offset += tree.node_count
            depth = max(depth, tree.max_depth)
        return cls(
            np.concatenate(features).astype(np.intp),
            np.concatenate(thresholds),
            np.concatenate(children).astype(np.intp),
            np.concatenate(values),
            np.asarray(roots, dtype=np.intp),
            depth,
        )

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """The forest's positive-class probability of each row of `X` (no NaN: imputed features)."""
        X32 = np.ascontiguousarray(X, dtype=np.float32)  # what the trees compare (scikit-learn's DTYPE)
        cells = X32.ravel()
        # One row (most requests): a flat walk, with no per-row offsets into `cells`.
        starts = 0 if len(X32) == 1 else (np.arange(len(X32)) * X32.shape[1])[:, None]
        nodes = self.roots if len(X32) == 1 else np.broadcast_to(self.roots, (len(X32), len(self.roots)))
        for _ in range(self.depth):
            # Without NaN, "not x <= threshold" is "x > threshold": go to the right child.
            right = cells.take(starts + self.feature.take(nodes)) > self.threshold.take(nodes)
            nodes = self.children.take(2 * nodes + right)
        return np.cumsum(np.atleast_2d(self.value.take(nodes)), axis=1)[:, -1] / len(self.roots)


@dataclass(frozen=True)
class _Linear:
    """A binary logistic regression: scikit-learn's `decision_function` and `expit`, without its checks."""

    coef_T: np.ndarray
    intercept: np.ndarray

    @classmethod
    def of(cls, model: LogisticRegression) -> _Linear:
        if len(model.classes_) != 2 or model.coef_.shape[0] != 1:
            raise CompileError("a logistic regression that is not binary")
        return cls(model.coef_.T, model.intercept_)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """The positive-class probability of each row of `X`, in scikit-learn's operations."""
        return expit((X @ self.coef_T + self.intercept).reshape(-1))


_COMPILED = {RandomForestClassifier: _Forest.of, LogisticRegression: _Linear.of}


@dataclass(frozen=True)
class FastModel:
    """The pipeline's preprocessor as numpy blocks, its fitted estimator, and the estimator compiled
    (`_COMPILED`), where it is one of those."""

    blocks: tuple[_Block, ...]
    estimator: Any
    sparse_output: bool
    compiled: _Estimator | None = None

    def features(self, rows: Rows) -> Any:
        """The matrix the fitted `ColumnTransformer` would give for `rows`."""
        X = np.hstack([block.transform(rows) for block in self.blocks])
        return sparse.csr_matrix(X) if self.sparse_output else X

    def predict_proba(self, rows: Rows) -> np.ndarray:
        """The positive-class probability of each row (validated request rows, as dicts)."""
        X = self.features(rows)
        if self.compiled is not None and not self.sparse_output and not np.isnan(X).any():
            return self.compiled.predict_proba(X)
        return self.estimator.predict_proba(X)[:, 1]


def compile_pipeline(pipeline: Pipeline) -> FastModel:
    """The fast form of a fitted `build_model` pipeline.

    Raises:
        CompileError: for a step this module does not reproduce.
    """
    steps = _steps(pipeline, (ColumnTransformer, type(pipeline.steps[-1][1])))
    preprocessor, estimator = steps
    blocks: list[_Block] = []
    for name, group, columns in preprocessor.transformers_:
        if name == "remainder":
            if group != "drop":
                raise CompileError(f"a remainder that is not dropped: {group!r}")
            continue
        if name not in _GROUPS:
            raise CompileError(f"no fast form for the {name!r} group")
        blocks.append(_GROUPS[name](group, tuple(columns)))
    width = sum(block.width for block in blocks)
    expected = len(preprocessor.get_feature_names_out())
    if width != expected:
        raise CompileError(f"the compiled features are {width} wide, the pipeline's {expected}")
    compile_estimator = _COMPILED.get(type(estimator))
    compiled = compile_estimator(estimator) if compile_estimator else None
    return FastModel(tuple(blocks), estimator, bool(preprocessor.sparse_output_), compiled)


def check_against(
    fast: FastModel, pipeline: Pipeline, frame: Any, rows: Rows, tolerance: float = 1e-12
) -> float:
    """Check the fast path against the pipeline on `rows` (and `frame`, the same rows as batch builds them).

    The feature matrices must be equal to the last bit, and the scores within `tolerance` (the
    estimator's arithmetic may group a sum differently for a different number of rows).
    Returns the largest score difference.

    Raises:
        CompileError: when the matrices differ or a score differs by more than `tolerance`.
    """
    expected = pipeline[:-1].transform(frame)
    expected = expected.toarray() if sparse.issparse(expected) else np.asarray(expected)
    actual = fast.features(rows)
    actual = actual.toarray() if sparse.issparse(actual) else actual
    if expected.shape != actual.shape or not np.array_equal(expected, actual):
        raise CompileError("the fast path's features differ from the pipeline's")
    reference = pipeline.predict_proba(frame)[:, 1]
    worst = float(np.max(np.abs(fast.predict_proba(rows) - reference))) if len(rows) else 0.0
    if not worst <= tolerance:
        raise CompileError(
            f"the fast path's scores differ from the pipeline's by {worst:.3g} (> {tolerance:g})"
        )
    return worst
