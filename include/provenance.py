"""What a model was built with: library versions and the version of the platform's own code."""

from __future__ import annotations

import hashlib
import platform
from importlib.metadata import version
from pathlib import Path

INCLUDE = Path(__file__).resolve().parent
LIBRARIES = ("scikit-learn", "pandas", "numpy", "pyarrow", "skops", "apache-airflow")


def library_versions() -> dict[str, str]:
    return {"python": platform.python_version(), **{name: version(name) for name in LIBRARIES}}


def code_version() -> str:
    """A digest of every source and spec file under `include/`: equal digests, equal code."""
    digest = hashlib.sha256()
    for path in sorted(INCLUDE.rglob("*")):
        if path.suffix in (".py", ".yaml") and "__pycache__" not in path.parts:
            digest.update(path.relative_to(INCLUDE).as_posix().encode())
            digest.update(path.read_bytes())
    return f"src-{digest.hexdigest()[:16]}"
