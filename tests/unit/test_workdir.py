"""Working folders: a SIGKILLed task's folder is removed by the next task; a live one's never."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile

import pytest

from include.io.workdir import work_root, workdir
from tests.conftest import REPO

HOLD = """
import sys, time
from include.io.workdir import workdir
with workdir("ingest-churn") as path:
    (path / "staged.parquet").write_bytes(b"x" * 1000)
    print(path, flush=True)
    time.sleep(120)
"""


@pytest.fixture
def temp_root(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    return tmp_path


def holder() -> tuple[subprocess.Popen, str]:
    """A process inside a working folder, and the folder."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-c", HOLD], stdout=subprocess.PIPE, text=True, env=env)
    return process, process.stdout.readline().strip()


def test_a_killed_process_folder_goes_and_a_live_one_stays(temp_root):
    killed, left = holder()
    alive, kept = holder()
    try:
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait()
        assert os.path.isdir(left)  # what SIGKILL leaves behind

        with workdir("ingest-churn") as mine:
            assert mine.parent == work_root() == temp_root / "ml-platform-work"
            assert not os.path.exists(left)
            assert os.path.isdir(kept)
        assert not mine.exists()
        assert os.path.isdir(kept)
    finally:
        alive.kill()
        alive.wait()
