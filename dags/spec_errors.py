"""
### Spec errors: every spec file that cannot be used, as this file's import error

The DAG files (`ingest.py`, `train.py`, `score.py`) build the DAGs of every valid spec in
`include/usecases/` (or `PLATFORM_SPEC_DIR`), each apart; a bad spec file fails its own use case's
DAGs only. This file holds no DAG: it raises the errors of the files that do not validate (a line
per file, naming the file and the key) and of the valid ones whose DAG still failed to build (the
DAG files run again here, see `include/dag_factory.py`; a line per DAG, naming the spec file), so
that Airflow shows them under *DAG Import Errors* (and `DagBag.import_errors`).
"""

from __future__ import annotations

from pathlib import Path

from include.config import Settings
from include.dag_factory import build_errors
from include.usecases.spec import SpecError, load_specs

DAG_FILES = ("ingest.py", "train.py", "score.py")

_errors = load_specs(Settings.from_env().spec_dir).errors
_errors += build_errors(Path(__file__).with_name(name) for name in DAG_FILES)
if _errors:
    raise SpecError(
        "Spec files with errors (their DAGs, or the one named, are not built):\n"
        + "\n".join(str(e) for e in _errors)
    )
