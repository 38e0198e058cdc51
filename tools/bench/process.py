"""A bench measurement in a fresh process, so that its peak RSS is its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def run_measurement(module: str, *args: str, what: str) -> dict[str, Any]:
    """Run `python -m module args` from the repository; the JSON figures its last line prints.

    Raises:
        RuntimeError: naming `what` with the process's stderr, when it fails.
    """
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"{what} failed:\n{done.stderr}")
    return json.loads(done.stdout.splitlines()[-1])
