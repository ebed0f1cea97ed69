"""Prints the sandbox's start-up time, the morning checklist's warm wall time (the whole process, interpreter
start included), and the AWS calls of each check.

Targets on the 2-core machine (the sandbox's own start: bench/sandbox_start.py): warm morning checklist, whole process <= 0.6 s; AWS calls of
the morning checklist <= 10. Bytecode caching is on for the runs (PYTHONDONTWRITEBYTECODE unset), as for a user.
Usage: python bench/morning.py [--runs N]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from aws_calls import print_counts
from entmoot_ops.sandbox.handle import SandboxHandle, start
from performance_page import recorded

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def bench_sandbox() -> Iterator[tuple[int, SandboxHandle, Path]]:
    """A bench's ``--runs N``, a sandbox of its own, and a scratch directory for its reports."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    handle = start()
    handle.users = 1
    try:
        with tempfile.TemporaryDirectory() as scratch:
            yield runs, handle, Path(scratch)
    finally:
        handle.release()


def run_morning(state_file: Path, reports: Path, *extra: str, env: dict | None = None) -> tuple[float, float, str]:
    started = time.monotonic()
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    completed = subprocess.run([sys.executable, "-m", "pytest", "checks/", "-m", "morning", "-q", "--reports-dir", str(reports), *extra],
                               cwd=ROOT, capture_output=True, text=True,
                               env={**environment, "ENTMOOT_SANDBOX_STATE": str(state_file), **(env or {})})
    wall = time.monotonic() - started
    session = re.search(r"in ([\d.]+)s", completed.stdout.splitlines()[-1])
    return wall, float(session.group(1)) if session else float("nan"), completed.stdout.splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    started = time.monotonic()
    handle = start()
    up = time.monotonic() - started
    handle.users = 1
    try:
        print(f"sandbox up: {up:.2f} s  (components: {handle.state['timings']}; bench/sandbox_start.py measures the command)")
        with tempfile.TemporaryDirectory() as scratch:
            reports = Path(scratch)
            cold = run_morning(handle.state_file, reports / "cold")
            print(f"morning, first run: wall {cold[0]:.2f} s, pytest session {cold[1]:.2f} s  [{cold[2]}]")
            warm = [run_morning(handle.state_file, reports / f"warm{i}") for i in range(runs)]
            walls = sorted(w for w, _, _ in warm)
            sessions = sorted(s for _, s, _ in warm)
            print(f"morning, warm ({runs} runs): wall median {walls[len(walls) // 2]:.2f} s (min {walls[0]:.2f}, max {walls[-1]:.2f}); "
                  f"pytest session median {sessions[len(sessions) // 2]:.2f} s  target: whole process <= 0.6 s")
            print_counts(run_morning, handle.state_file, scratch, "check")
    finally:
        handle.release()


if __name__ == "__main__":
    with recorded("morning"):  # and to its section of docs/performance.md
        main()
