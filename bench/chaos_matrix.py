"""Prints the detection matrix of the whole sandbox: every fault it offers against the morning, alerts, handoff,
evening, incident, weekly and monthly checks, under steady API traffic: faults caught, missed, false alarms, median detection latency.
Too long for CI (about 5 minutes); CI runs it on a few faults (tests/test_chaos_matrix.py).
Usage: python bench/chaos_matrix.py [--output DIR]   (uses a running sandbox, else starts its own)
"""

from __future__ import annotations

import sys
import time

from entmoot_ops.cli import main
from performance_page import recorded

if __name__ == "__main__":
    with recorded("chaos_matrix"):  # and to its section of docs/performance.md, when nothing was missed
        started = time.monotonic()
        code = main(["chaos", "matrix", *sys.argv[1:]])
        print(f"whole matrix: {time.monotonic() - started:.0f} s")
        sys.exit(code)
