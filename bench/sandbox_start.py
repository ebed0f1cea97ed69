"""How long ``entmoot-ops sandbox up`` takes, the whole command as a person types it, and where the time goes.

Prints the median wall time over N starts (each in a fresh state directory, stopped after), the components'
own timings from the sandbox's state (PostgreSQL's start overlaps moto's start and seed, and both overlap the
supervisor's imports, so the parts add up to more than the whole), and the supervisor's import time alone.
Target on the 2-core machine: at most 5 s.
Usage: python bench/sandbox_start.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from performance_page import recorded


def start_once(state_home: Path) -> tuple[float, dict[str, float]]:
    environment = {**os.environ, "XDG_STATE_HOME": str(state_home)}
    environment.pop("ENTMOOT_SANDBOX_STATE", None)
    began = time.monotonic()
    subprocess.run([sys.executable, "-m", "entmoot_ops.cli", "sandbox", "up"], env=environment, check=True,
                   capture_output=True, timeout=120)
    took = time.monotonic() - began
    timings = json.loads((state_home / "entmoot-ops" / "sandbox.json").read_text())["timings"]
    subprocess.run([sys.executable, "-m", "entmoot_ops.cli", "sandbox", "down"], env=environment, check=True,
                   capture_output=True, timeout=120)
    return took, timings


def import_seconds() -> float:
    began = time.monotonic()
    subprocess.run([sys.executable, "-c", "import entmoot_ops.sandbox.supervisor"], check=True, timeout=60)
    return time.monotonic() - began


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as scratch:
        starts = [start_once(Path(scratch) / f"state{i}") for i in range(runs)]
    walls = sorted(wall for wall, _ in starts)
    print(f"entmoot-ops sandbox up, whole command: median {statistics.median(walls):.2f} s "
          f"(min {walls[0]:.2f}, max {walls[-1]:.2f}, {runs} runs)  target <= 5 s")
    parts = {name: statistics.median(t[name] for _, t in starts) for name in starts[0][1]}
    print("where the time goes (median seconds; postgres overlaps aws and the imports): "
          + ", ".join(f"{name} {seconds:.2f}" for name, seconds in parts.items()))
    print(f"supervisor imports (moto, aiohttp, boto3), measured alone: {import_seconds():.2f} s")


if __name__ == "__main__":
    with recorded("sandbox_start"):  # and to its section of docs/performance.md
        main()
