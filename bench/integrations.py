"""Prints what the on-call's integrations add to a healthy morning run: summary.json, the metrics textfile (and the
push, where a Pushgateway is configured) and the charts. Target: at most 0.2 s.

A healthy morning run draws no chart (charts are drawn for checks that did not pass, or on --charts all) and
notifies nobody (no state changed). The exports are timed as the run does them, in a fresh interpreter (imports
included), over the results of a real morning run on the sandbox; then, for reference, what one chart costs when a
check fails (matplotlib's import included) and a whole morning run with --charts all.
Usage: python bench/integrations.py [--runs N]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from morning import bench_sandbox, run_morning
from performance_page import recorded

EXPORTS = """
import sys, time
from pathlib import Path
from entmoot_ops import reports  # a run has imported it already (the plugin does)
from entmoot_ops.results import read_junit
results = read_junit(Path(sys.argv[1]) / "junit.xml")
started = time.perf_counter()
from entmoot_ops import metrics  # what a run imports for its exports: prometheus_client
reports.write_summary_json(Path(sys.argv[2]) / "summary.json", results, marker="morning", wall_seconds=0.5)
registry = metrics.registry("sandbox", results, 0.5, time.time())
metrics.textfile(Path(sys.argv[2]) / "metrics", "sandbox", "morning", registry)
print(f"{time.perf_counter() - started:.4f} {len(results)}")
"""

CHART = """
import time
from datetime import datetime, timedelta, UTC
started = time.perf_counter()
from entmoot_ops import charts
now = datetime.now(UTC)
points = [(now - timedelta(seconds=5 * i), 50.0 + i % 7) for i in range(180)]
charts.series(charts.Chart("CPUUtilization per period", "%", [charts.Line("CPU", points)], 80.0, (points[-1][0], now)))
print(f"{time.perf_counter() - started:.4f}")
"""


def _python(code: str, *args: str) -> list[str]:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True).stdout.split()


def main() -> None:
    with bench_sandbox() as (runs, handle, reports):
        run_morning(handle.state_file, reports / "warm-up")
        healthy = [run_morning(handle.state_file, reports / f"run{i}") for i in range(runs)]
        print(f"morning runs: {healthy[-1][2]}")
        exports = []
        for i in range(runs):
            seconds, count = _python(EXPORTS, str(reports / "run0"), str(reports / f"exports{i}"))
            exports.append(float(seconds))
        print(f"exports of a healthy morning run ({count} checks: summary.json, metrics textfile), fresh interpreter, "
              f"median of {runs}: {statistics.median(exports) * 1000:.0f} ms  target: charts and exports <= 200 ms; "
              f"charts drawn on a healthy run: 0")
        charts = [float(_python(CHART)[0]) for _ in range(runs)]
        print(f"one chart when a check fails (matplotlib imported, 180 periods, PNG): median {statistics.median(charts) * 1000:.0f} ms")
        walls = sorted(run_morning(handle.state_file, reports / f"all{i}", "--charts", "all")[0] for i in range(runs))
        plain = sorted(w for w, _, _ in healthy)
        print(f"whole morning process, median of {runs}: {plain[len(plain) // 2]:.2f} s by default, "
              f"{walls[len(walls) // 2]:.2f} s with --charts all")


if __name__ == "__main__":
    with recorded("integrations"):  # and to its section of docs/performance.md
        main()
