"""Model files: the fitted-model type, writing a model to the lake and loading a registered version.

Every reader of a model (the gate, batch scoring, the real-time service, the bench) goes through
`load_version_model`: the file is read from the version's URI, its sha256 checked against the
registry's before anything is deserialised, and the decision threshold taken from the registry.

skops rebuilds objects from a schema instead of unpickling, and refuses any type that is neither
trusted by skops itself (builtins, scikit-learn estimators, numpy arrays) nor in `TRUSTED_TYPES`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from include.io.lake import model_key
from include.io.stores import ObjectStore

if TYPE_CHECKING:
    from include.registry.registry import ModelVersion

# On import skops looks up the module of each type it trusts by reading attributes of every loaded
# module; in a task process those include Airflow's deprecated aliases, which answered with about
# 1,160 `DeprecatedImportWarning` lines per task log, none of them about this code.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", module=r"skops\.io\._utils")
    import skops.io as sio

logger = logging.getLogger(__name__)

# Reviewed: exactly what `skops.io.get_untrusted_types` reports for the pipelines of the four model
# families (tests/unit/test_model_files.py keeps this list honest). Everything else is refused.
TRUSTED_TYPES = (
    # Stateless; holds its expressions as text, evaluated by a parser of its own (no eval).
    "include.training.preprocess.DerivedFeatures",
    "include.training.preprocess.date_part_names",
    "include.training.preprocess.date_parts",
    # Names a missing indicator's columns `<name>_missing`; the indicator is scikit-learn's.
    "include.training.preprocess.missing_names",
    "include.training.preprocess.to_binary",
    "include.training.preprocess.to_numeric",
    "numpy.dtype",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.tree._tree.Tree",
)
_KEYS = {"pipeline", "threshold", "trial", "metadata"}


class ModelFileError(ValueError):
    """A model file that must not or cannot be loaded: wrong checksum, untrusted type, not a model."""


@dataclass(frozen=True)
class Trial:
    """One model family with one parameter set (`trial_id` is `<family>-<n>`): what a model file was
    fitted with. Sampled by `include.training.estimators`; stored here, below training."""

    trial_id: str
    family: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (the XCom form)."""
        return {"trial_id": self.trial_id, "family": self.family, "params": dict(self.params)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Trial:
        """The trial `to_dict` described."""
        return cls(trial_id=data["trial_id"], family=data["family"], params=dict(data["params"]))


@dataclass(frozen=True)
class FittedModel:
    """A pipeline fitted on the whole training part, and the threshold chosen for it.

    Attributes:
        pipeline: preprocessor and estimator; it takes the raw feature columns.
        threshold: binary: a row is predicted positive when its probability is >= this (unused by
            the other tasks).
        trial: the family and parameters it was fitted with.
        metadata: JSON-able facts stored with the model file: among them `task` (binary when absent:
            files written before tasks) and, for multiclass, `classes` in the order of the outputs.
    """

    pipeline: Pipeline
    threshold: float
    trial: Trial
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def task(self) -> str:
        return self.metadata.get("task", "binary")

    @property
    def classes(self) -> tuple[Any, ...] | None:
        """A multiclass model's classes, in the order of its probability columns."""
        found = self.metadata.get("classes")
        return None if found is None else tuple(found)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """The probability of the positive class for each row of `frame` (binary)."""
        return self.pipeline.predict_proba(frame)[:, 1]

    def outputs(self, frame: pd.DataFrame) -> np.ndarray:
        """What the model says of each row, per task: binary, the positive class's probability;
        multiclass, every class's probability (rows x classes, in `classes` order); regression, the
        predicted value."""
        if self.task == "regression":
            return np.asarray(self.pipeline.predict(frame), dtype="float64")
        if self.task == "multiclass":
            return class_probabilities(self.pipeline, frame, len(self.classes or ()))
        return self.predict_proba(frame)


def class_probabilities(pipeline: Pipeline, frame: pd.DataFrame, classes: int) -> np.ndarray:
    """Every class's probability per row, a column per class index 0 .. `classes` - 1: a class the
    estimator never saw in training gets probability 0."""
    seen = pipeline.predict_proba(frame)
    proba = np.zeros((len(frame), classes))
    proba[:, np.asarray(pipeline.classes_, dtype=int)] = seen
    return proba


@dataclass(frozen=True)
class VersionModel:
    """A registered version's model, loaded and checked, with the registry's threshold."""

    version: ModelVersion
    model: FittedModel

    @property
    def threshold(self) -> float:
        return self.version.threshold

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """The probability of the positive class for each row of `frame`."""
        return self.model.predict_proba(frame)

    def labels(self, scores: np.ndarray) -> np.ndarray:
        """1 where a score reaches the version's threshold, else 0 (as int16)."""
        return (scores >= self.threshold).astype("int16")


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of `data`, as 64 lower-case hex digits."""
    return hashlib.sha256(data).hexdigest()


def dump_model(model: FittedModel, metadata: Mapping[str, Any]) -> bytes:
    """The model file: pipeline, threshold, trial and metadata (`model.metadata` updated by `metadata`).

    Raises:
        TypeError: when the metadata is not JSON-able.
    """
    payload = {
        "pipeline": model.pipeline,
        "threshold": float(model.threshold),
        # JSON text keeps arbitrary metadata out of skops's type audit.
        "trial": json.dumps(model.trial.to_dict(), sort_keys=True),
        "metadata": json.dumps({**model.metadata, **metadata}, sort_keys=True),
    }
    data = sio.dumps(payload)
    logger.info("Serialised %s: %d bytes, sha256 %s", model.trial.trial_id, len(data), sha256_hex(data))
    return data


def load_model(data: bytes, expected_sha256: str) -> FittedModel:
    """The model in `data`, after its checksum matches and every type in it is trusted.

    Raises:
        ModelFileError: on a checksum mismatch (checked before anything is deserialised), an
            untrusted type, or a file that is not a model written by `dump_model`.
    """
    actual = sha256_hex(data)
    if not hmac.compare_digest(actual, expected_sha256.strip().lower()):
        raise ModelFileError(f"checksum mismatch: expected sha256 {expected_sha256}, the data has {actual}")
    if not data:
        # skops reads b"" as "no data given" and raises a bare ValueError.
        raise ModelFileError("not a model file written by this platform (skops): the file is empty")
    try:
        untrusted = sorted(set(sio.get_untrusted_types(data=data)) - set(TRUSTED_TYPES))
        if untrusted:
            raise ModelFileError(f"refusing to load a model file with untrusted types: {untrusted}")
        payload = sio.loads(data, trusted=list(TRUSTED_TYPES))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"not a model file written by this platform (skops): {exc}") from exc
    if not (
        isinstance(payload, dict) and set(payload) == _KEYS and isinstance(payload["pipeline"], Pipeline)
    ):
        raise ModelFileError(f"not a model file: expected a dict of {sorted(_KEYS)} holding a Pipeline")
    model = FittedModel(
        pipeline=payload["pipeline"],
        threshold=payload["threshold"],
        trial=Trial.from_dict(json.loads(payload["trial"])),
        metadata=json.loads(payload["metadata"]),
    )
    logger.info("Loaded %s (%d bytes, sha256 %s)", model.trial.trial_id, len(data), actual)
    return model


def store_model(lake: ObjectStore, use_case: str, data: bytes) -> tuple[str, str]:
    """Put a model file in the lake under its checksum; its URI and sha256."""
    sha = sha256_hex(data)
    key = model_key(use_case, sha)
    lake.put_bytes(key, data)
    return lake.uri(key), sha


def load_version_model(lake: ObjectStore, version: ModelVersion) -> VersionModel:
    """A registered version's model, loaded only after its sha256 matches the registry's.

    Raises:
        ModelFileError: naming the version, when its file fails any check of `load_model`.
    """
    data = lake.read_bytes(lake.key_of(version.artifact_uri))
    try:
        model = load_model(data, version.sha256)
    except ModelFileError as exc:
        where = f"{version.use_case} v{version.version} ({version.artifact_uri})"
        raise ModelFileError(f"{where}: {exc}") from exc
    return VersionModel(version, model)
