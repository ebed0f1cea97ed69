"""The session-end guard of tests/conftest.py: a process a test leaves running is stopped, named, and fails the run,
however it was started (a child that kept the session's mark, or one detached into its own session)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

LEAVES = '''
import subprocess, sys

def test_passes_but_leaves_a_process_running(tmp_path):
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", str(tmp_path)], start_new_session=True)

def test_and_one_more_that_cleans_up():
    subprocess.run([sys.executable, "-c", "pass"], check=True)
'''


def _run(directory: Path, *args: str) -> subprocess.CompletedProcess:
    shutil.copy(ROOT / "tests" / "conftest.py", directory / "conftest.py")
    return subprocess.run([sys.executable, "-m", "pytest", str(directory), "-q", "-p", "no:cacheprovider", "-p", "no:entmoot_ops", *args],
                          cwd=directory, capture_output=True, text=True, timeout=120)


def _sleepers(marker: str) -> list[str]:
    found = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.split()
    return found


def test_a_process_left_running_is_stopped_and_fails_the_run(tmp_path):
    (tmp_path / "test_leaves.py").write_text(LEAVES)
    result = _run(tmp_path, "--basetemp", str(tmp_path / "base"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "2 passed" in result.stdout
    assert "FAILED the tests left 1 process(es) running; stopped now:" in result.stdout
    assert "time.sleep(300)" in result.stdout
    assert _sleepers(str(tmp_path / "base")) == []


def test_under_xdist_the_controller_finds_what_a_worker_left(tmp_path):
    (tmp_path / "test_leaves.py").write_text(LEAVES)
    result = _run(tmp_path, "-n", "2", "--basetemp", str(tmp_path / "base"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAILED the tests left 1 process(es) running" in result.stdout
    assert _sleepers(str(tmp_path / "base")) == []


def test_a_session_that_leaves_nothing_passes(tmp_path):
    (tmp_path / "test_clean.py").write_text("def test_nothing():\n    pass\n")
    result = _run(tmp_path)
    assert result.returncode == 0 and "left" not in result.stdout, result.stdout
