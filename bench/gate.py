"""Prints the deploy gate's wall time on the sandbox for an already-finished rollout, and its AWS calls.

Usage: python bench/gate.py [--runs N]
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from aws_calls import print_counts
from morning import bench_sandbox
from performance_page import recorded

ROOT = Path(__file__).resolve().parent.parent


def gate(state_file: Path, reports: Path, *extra: str, env: dict | None = None) -> tuple[float, str]:
    started = time.monotonic()
    completed = subprocess.run([sys.executable, "-m", "pytest", "checks/", "-m", "deploy", "--expected-version", "1.4.2",
                                "-q", "--reports-dir", str(reports), *extra], cwd=ROOT, capture_output=True, text=True,
                               env={**os.environ, "ENTMOOT_SANDBOX_STATE": str(state_file), **(env or {})})
    return time.monotonic() - started, completed.stdout.strip().splitlines()[-1]


def main() -> None:
    with bench_sandbox() as (runs, handle, reports):
        walls = sorted(gate(handle.state_file, reports / f"run{i}") for i in range(runs))
        session = re.search(r"in ([\d.]+)s", walls[len(walls) // 2][1])
        print(f"deploy gate, finished rollout ({runs} runs): wall median {walls[len(walls) // 2][0]:.2f} s "
              f"(min {walls[0][0]:.2f}, max {walls[-1][0]:.2f}); pytest session {session.group(1) if session else '?'} s "
              f"[{walls[0][1]}]")
        print_counts(gate, handle.state_file, str(reports), "gate check")


if __name__ == "__main__":
    with recorded("gate"):  # and to its section of docs/performance.md
        main()
