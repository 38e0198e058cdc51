"""The package layering (pyproject.toml, [tool.importlinter]) is a contract that fails on an upward import."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env, capture_output=True, text=True, check=False
    )


def test_an_upward_import_breaks_the_layers_contract(tmp_path):
    for package in ("include", "dags", "plugins", "tools"):
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    assert lint_imports(tmp_path).returncode == 0

    # The lake's module reaching up into the scoring stage.
    lake = tmp_path / "include" / "io" / "lake.py"
    lake.write_text(lake.read_text() + "\nfrom include.scoring.task import run_scoring  # noqa\n")
    broken = lint_imports(tmp_path)

    assert broken.returncode == 1
    assert "BROKEN" in broken.stdout
    assert "include.io.lake -> include.scoring.task" in broken.stdout
