"""What a model was built from: library versions, the code that shapes it, and the training fingerprint."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import platform
from collections.abc import Mapping
from importlib.metadata import version
from pathlib import Path

from include.usecases.spec import UseCase

INCLUDE = Path(__file__).resolve().parent
LIBRARIES = ("scikit-learn", "pandas", "numpy", "pyarrow", "skops", "apache-airflow")
# The code a model depends on: features, fitting and tuning, the spec's meaning, the model file.
MODEL_CODE = ("training", "usecases/spec.py", "registry/model_files.py")
# The parts of a spec that change what training fits (the gate's primary metric ranks the trials).
MODEL_SPEC = {"entity_id": True, "label": True, "columns": True, "features": True, "training": True}


def library_versions() -> dict[str, str]:
    return {"python": platform.python_version(), **{name: version(name) for name in LIBRARIES}}


def code_version() -> str:
    """A digest of the source files that shape a model (`MODEL_CODE`): equal digests, equal code."""
    digest = hashlib.sha256()
    for entry in MODEL_CODE:
        for path in sorted([INCLUDE / entry] if entry.endswith(".py") else (INCLUDE / entry).rglob("*.py")):
            digest.update(path.relative_to(INCLUDE).as_posix().encode())
            digest.update(path.read_bytes())
    return f"src-{digest.hexdigest()[:16]}"


def training_fingerprint(window: Mapping[dt.date, str], spec: UseCase) -> str:
    """One digest of what decides a training run's model: the window's partitions (day and content
    sha256), the spec's model settings (with the run's overrides), the code and the libraries."""
    facts = {
        "window": {day.isoformat(): digest for day, digest in sorted(window.items())},
        "spec": spec.model_dump(mode="json", include=MODEL_SPEC),
        "primary": spec.gate.primary,
        "code": code_version(),
        "libraries": library_versions(),
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()
