"""Local working folders for a task's files, cleaned even after a process killed outright.

A `TemporaryDirectory` is removed when its process exits normally or by an exception, not when the
process is SIGKILLed (the OOM killer, `kill -9`, a worker pod evicted): a killed ingest left its
staged copy of the day in `/tmp`. Every working folder here lives under one root and carries its
process id in its name; `workdir` first removes the folders of processes that no longer run on
this machine, then makes its own. A folder of a live process is never touched.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

ROOT_NAME = "ml-platform-work"
_OWNED = re.compile(r"^.+-pid(?P<pid>\d+)-[^-]+$")


def work_root() -> Path:
    """The folder holding every working folder (under the system's temporary folder)."""
    return Path(tempfile.gettempdir()) / ROOT_NAME


@contextlib.contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    """A fresh working folder named `<prefix>-pid<pid>-<random>`, removed on exit; the folders
    that killed processes left behind are removed first."""
    root = work_root()
    root.mkdir(parents=True, exist_ok=True)
    sweep_orphans(root)
    with tempfile.TemporaryDirectory(prefix=f"{prefix}-pid{os.getpid()}-", dir=root) as path:
        yield Path(path)


def sweep_orphans(root: Path) -> list[Path]:
    """Remove the working folders under `root` whose process is gone; the folders removed."""
    removed = []
    for folder in root.iterdir():
        owner = _OWNED.match(folder.name)
        if owner is None or not folder.is_dir() or _alive(int(owner["pid"])):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
        log.info("removed %s, left by process %s that no longer runs", folder, owner["pid"])
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True
