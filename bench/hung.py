"""Prints what a frozen dependency (SIGSTOP: TCP accepted, nothing answered) costs the morning checklist with the
default timeouts (connect 3 s, read 10 s, 3 AWS attempts), dependency by dependency.

Target: at most one timeout budget (attempts included) plus 5 s over the healthy run. Before the circuit breaker
a frozen AWS endpoint cost 323 s (each of 8 checks paid 3 x 10 s), the primary 16.7 s, Redis 21.7 s, the API 11.8 s.
Usage: python bench/hung.py
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from entmoot_ops.config import Timeouts
from entmoot_ops.sandbox.handle import start
from performance_page import recorded

ROOT = Path(__file__).resolve().parent.parent
DEFAULTS = Timeouts()
BUDGET = {"aws": DEFAULTS.aws_max_attempts * DEFAULTS.read_seconds, "primary": DEFAULTS.connect_seconds,
          "replica": DEFAULTS.connect_seconds, "redis": DEFAULTS.read_seconds, "api": DEFAULTS.read_seconds}


def morning(state_file: Path, environments: Path, reports: Path) -> tuple[float, str]:
    started = time.monotonic()
    completed = subprocess.run([sys.executable, "-m", "pytest", "checks/", "-m", "morning", "-q", "--reports-dir", str(reports),
                                "--environments-dir", str(environments)], cwd=ROOT, capture_output=True, text=True,
                               env={**os.environ, "ENTMOOT_SANDBOX_STATE": str(state_file)})
    return time.monotonic() - started, completed.stdout.strip().splitlines()[-1]


def main() -> None:
    handle = start()
    handle.users = 1
    try:
        with tempfile.TemporaryDirectory() as scratch:
            environments = Path(scratch) / "environments"
            environments.mkdir()
            # The sandbox's own short timeouts removed: the defaults a real environment gets.
            text = (ROOT / "environments" / "sandbox.toml").read_text()
            (environments / "sandbox.toml").write_text(re.sub(r"\[timeouts\]\n(.+\n)+?\n", "", text))
            healthy, summary = morning(handle.state_file, environments, Path(scratch) / "healthy")
            print(f"healthy morning run: {healthy:.1f} s  [{summary}]")
            print(f"{'frozen':8} {'run':>7} {'added':>7} {'budget':>7}  target <= budget + 5 s")
            for name in ("aws", "primary", "replica", "redis", "api"):
                pid = handle.control("GET", "state")["pids"]["supervisor" if name == "aws" else name]
                os.kill(pid, signal.SIGSTOP)
                try:
                    wall, summary = morning(handle.state_file, environments, Path(scratch) / name)
                finally:
                    os.kill(pid, signal.SIGCONT)
                added = wall - healthy
                verdict = "ok" if added <= BUDGET[name] + 5 else "OVER"
                print(f"{name:8} {wall:6.1f}s {added:6.1f}s {BUDGET[name]:6.0f}s  {verdict}  [{summary}]", flush=True)
                handle.sync()
    finally:
        handle.release()


if __name__ == "__main__":
    with recorded("hung"):  # and to its section of docs/performance.md
        main()
