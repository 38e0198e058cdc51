"""One DAG per valid spec, each built apart: a DAG that fails to build takes no other use case's along.

The spec checks (`include/usecases/spec.py`) refuse every value that building a DAG is known to
refuse; this is the net for what they miss. Each DAG file ends with `build_dags`, which leaves a
spec whose DAG raised out of that file's DAGs. Airflow parses each DAG file in a process of its own,
so `dags/spec_errors.py` (a file with no DAG) calls `build_errors`, which runs the DAG files again
and raises what failed as its import error, naming the spec file.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.usecases.spec import SpecError, UseCase, load_specs

if TYPE_CHECKING:
    from airflow.sdk import DAG

log = logging.getLogger(__name__)

# Where `build_dags` leaves its failures in a DAG file's namespace, for `build_errors` to read.
_FAILED = "DAGS_NOT_BUILT"


def build_dags(
    namespace: dict[str, Any], build: Callable[[UseCase], DAG | None], spec_dir: Path
) -> list[SpecError]:
    """Put `build(spec)` for each valid spec in `spec_dir` into `namespace` (a DAG file's `globals()`),
    under its DAG id (a spec for which `build` gives None has no DAG in that file).

    Returns:
        One error per spec whose DAG raised while being built, naming the spec file, the DAG file
        and the cause; the same list is left in `namespace` for `build_errors`.
    """
    folder = load_specs(spec_dir)
    dag_file = Path(namespace["__file__"]).name
    failed = []
    for spec in folder.specs:
        try:
            with _unregistered():
                dag = build(spec)
        except Exception as exc:
            file = folder.files[spec.name]
            error = SpecError(f"{file}: its DAG in {dag_file} cannot be built: {_causes(exc)}")
            log.error("%s", error)
            failed.append(error)
        else:
            if dag is not None:
                namespace[dag.dag_id] = dag
    namespace[_FAILED] = failed
    return failed


def build_errors(dag_files: Iterable[Path]) -> list[SpecError]:
    """The failures of `build_dags` in each of `dag_files`, found by running each file once more.

    A DAG file that fails to import at all is left out: Airflow shows that as the file's own error.
    """
    errors: list[SpecError] = []
    for path in dag_files:
        name = f"_spec_check_{path.stem}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:
            log.warning("%s does not import (%s); Airflow reports that as its own error", path.name, exc)
            continue
        finally:
            del sys.modules[name]
        errors += getattr(module, _FAILED, [])
    return errors


@contextlib.contextmanager
def _unregistered() -> Iterator[None]:
    """Build with Airflow's registration of DAGs off.

    A DAG built in a `with` block registers itself with the file being parsed, even one whose build
    raised half-way, and a file that runs the DAG files again (`build_errors`) must hold no DAG:
    `build_dags` puts a DAG in its file's namespace itself, once whole.
    """
    from airflow.sdk.definitions._internal.contextmanager import DagContext

    registering = DagContext.current_autoregister_module_name
    DagContext.current_autoregister_module_name = None
    try:
        yield
    finally:
        DagContext.current_autoregister_module_name = registering


def _causes(exc: BaseException) -> str:
    """`exc` and the exceptions behind it (Airflow's "not allowed to define a Schedule" hides the
    param that failed), each by its first line, leaving out what an earlier line already says."""
    lines: list[str] = []
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        first = next(iter(str(cause).splitlines()), "")
        if not any(first in line for line in lines):
            lines.append(f"{type(cause).__name__}: {first}")
        cause = cause.__cause__ or cause.__context__
    return " <- ".join(lines)
