"""
### Spec errors: every spec file that cannot be used, as this file's import error

The DAG files (`ingest.py`, `train.py`, `score.py`) build the DAGs of every valid spec in
`include/usecases/` (or `PLATFORM_SPEC_DIR`); a bad spec file fails its own use case's DAGs only.
This file holds no DAG: it raises the bad files' errors, one line per file naming the file and the
key, so that Airflow shows them under *DAG Import Errors* (and `DagBag.import_errors`).
"""

from __future__ import annotations

from include.config import Settings
from include.usecases.spec import SpecError, load_specs

_errors = load_specs(Settings.from_env().spec_dir).errors
if _errors:
    raise SpecError(
        f"{len(_errors)} spec file(s) cannot be used; their DAGs are not built:\n"
        + "\n".join(str(e) for e in _errors)
    )
