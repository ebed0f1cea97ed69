"""Prints the load side's figures on the sandbox:
- requests per second of one locust process (FastHttpUser) against the sandbox API, beside the API's own ceiling
  measured by a lean client (wrk, from Debian's packages);
- two locust processes (--processes 2) against one: goal >= 1.8x;
- the scale-out experiment end to end (tests/test_scaling_experiment.py): goal under 2 minutes.
The sandbox's capacity model is lifted for the throughput figures (1000 requests a second per task, fault
api_task_rate), so that it is not what is measured.
Usage: python bench/load.py
"""

from __future__ import annotations

import csv
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from entmoot_ops.sandbox.handle import start
from performance_page import recorded

ROOT = Path(__file__).resolve().parent.parent
SECONDS = 15


def locust_rps(handle, processes: int, scratch: Path) -> tuple[float, float]:
    """Requests a second, and requests per CPU-second that locust's processes (workers reaped by the master) used."""
    env = handle.env
    plan = {"users": 100, "spawn_rate": 100, "duration_seconds": SECONDS, "think_seconds": [0, 0], "weights": {"health": 1},
            "p95_max_ms": 1e9, "failure_ratio_max": 1}
    environment = {**os.environ, "ENTMOOT_LOAD_PLAN": json.dumps(plan)}
    prefix = scratch / f"p{processes}"
    argv = [sys.executable, "-m", "locust", "-f", str(ROOT / "load" / "entmoot.py"), "--headless", "--host", env["ENTMOOT_SANDBOX_API_URL"],
            "--csv", str(prefix), "--only-summary", "--loglevel", "ERROR"] + (["--processes", str(processes)] if processes > 1 else [])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, env=environment, capture_output=True, timeout=SECONDS + 60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    total = next(r for r in csv.DictReader(open(f"{prefix}_stats.csv")) if r["Name"] == "Aggregated")
    return float(total["Requests/s"]), int(total["Request Count"]) / cpu


def wrk_rps(handle) -> float | None:
    if shutil.which("wrk") is None:
        return None
    done = subprocess.run(["wrk", "-t2", "-c100", f"-d{SECONDS}s", handle.env["ENTMOOT_SANDBOX_API_URL"] + "/health"],
                          capture_output=True, text=True, timeout=SECONDS + 30)
    found = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    return float(found.group(1)) if found else None


def main() -> None:
    handle = start()
    handle.users = 1
    try:
        with handle.fault("api_task_rate", rate=1000), tempfile.TemporaryDirectory() as scratch:
            one = locust_rps(handle, 1, Path(scratch))
            two = locust_rps(handle, 2, Path(scratch))
            ceiling = wrk_rps(handle)
        (one, one_efficiency), (two, two_efficiency) = one, two
        print(f"locust, 1 process (FastHttpUser, 100 users, GET /health): {one:.0f} req/s, {one_efficiency:.0f} per locust CPU-second")
        print(f"the API's ceiling, wrk -t2 -c100: {ceiling:.0f} req/s" if ceiling else "the API's ceiling: wrk not installed (apt-get install wrk)")
        print(f"locust, 2 processes: {two:.0f} req/s = {two / one:.2f}x one process  goal >= 1.8x "
              f"(on {os.cpu_count()} cores shared with the API: 2 processes cannot exceed what the API serves)")
        print(f"  per locust CPU-second: {two_efficiency:.0f} = {two_efficiency / one_efficiency:.2f}x one process's "
              "(near 1: the master/worker split costs little; the throughput gain needs cores the API does not use)")
    finally:
        handle.release()
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "pytest", "tests/test_scaling_experiment.py", "-k", "breach", "-s", "-q", "-p", "no:randomly"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    report = re.search(r"scale-out experiment: (\{.*\})", done.stdout)
    print(f"scale-out experiment: {report.group(1) if report else done.stdout[-500:]}  goal: experiment_seconds < 120")
    print(f"  (the whole pytest run, its own sandbox's start included: {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    with recorded("load"):  # and to its section of docs/performance.md
        main()
