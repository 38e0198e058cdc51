"""Model files: a fitted model and its metadata as skops bytes, loaded only after a checksum matches.

skops rebuilds objects from a schema instead of unpickling, and refuses any type that is neither
trusted by skops itself (builtins, scikit-learn estimators, numpy arrays) nor in `TRUSTED_TYPES`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Mapping
from typing import Any

import skops.io as sio
from sklearn.pipeline import Pipeline

from include.training.estimators import Trial
from include.training.tuning import FittedModel

logger = logging.getLogger(__name__)

# Reviewed: exactly what `skops.io.get_untrusted_types` reports for the pipelines of the four model
# families (tests/unit/training/test_artifacts.py keeps this list honest). Everything else is refused.
TRUSTED_TYPES = (
    "include.training.preprocess.date_part_names",
    "include.training.preprocess.date_parts",
    "include.training.preprocess.to_binary",
    "include.training.preprocess.to_numeric",
    "numpy.dtype",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.tree._tree.Tree",
)
_KEYS = {"pipeline", "threshold", "trial", "metadata"}


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
        ValueError: on a checksum mismatch (checked before anything is deserialised), an untrusted
            type, or a file that is not a model written by `dump_model`.
    """
    actual = sha256_hex(data)
    if not hmac.compare_digest(actual, expected_sha256.strip().lower()):
        raise ValueError(f"checksum mismatch: expected sha256 {expected_sha256}, the data has {actual}")
    untrusted = sorted(set(sio.get_untrusted_types(data=data)) - set(TRUSTED_TYPES))
    if untrusted:
        raise ValueError(f"refusing to load a model file with untrusted types: {untrusted}")
    payload = sio.loads(data, trusted=list(TRUSTED_TYPES))
    if not (
        isinstance(payload, dict) and set(payload) == _KEYS and isinstance(payload["pipeline"], Pipeline)
    ):
        raise ValueError(f"not a model file: expected a dict of {sorted(_KEYS)} holding a Pipeline")
    model = FittedModel(
        pipeline=payload["pipeline"],
        threshold=payload["threshold"],
        trial=Trial.from_dict(json.loads(payload["trial"])),
        metadata=json.loads(payload["metadata"]),
    )
    logger.info("Loaded %s (%d bytes, sha256 %s)", model.trial.trial_id, len(data), actual)
    return model
