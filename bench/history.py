"""Prints what the on-call's memory costs: what a run's history adds to the morning on one environment (open the
store, read the last run's states, the gauges' last 14 days and the silences' matches, write the run), and
``history`` for one check over a year, on a store holding a year of 10 environments at four runs a day (about
300,000 results), on SQLite and on PostgreSQL (a server of this script's own, from Debian's binaries).

Targets (issue 34): at most 20 ms a run for the morning on one environment; ``history`` at most 100 ms.
Usage: python bench/history.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the tests' PostgreSQL server

from entmoot_ops.config import HistorySettings  # noqa: E402
from entmoot_ops.history.store import DAY, Remembered, Run, _row, open_store  # noqa: E402
from performance_page import recorded  # noqa: E402
from postgres_server import postgres_server  # noqa: E402

ENVIRONMENTS, DAYS, RUNS_A_DAY = 10, 365, 4
# The morning checklist's 20 checks, five of them gauges, each with the readings a run keeps.
CHECKS = [f"check.{n:02}" for n in range(15)] + ["rds.free-storage", "postgres.connections", "redis.memory",
                                                 "replication.lag", "postgres.sequences"]


def results(at: float, index: int) -> list[Remembered]:
    found = []
    for number, check in enumerate(CHECKS):
        gauge = "level" if number >= 15 else ""
        value = 0.5 + 0.3 * ((index + number) % 7) / 7
        readings = [{"label": f"{check} reading", "value": value, "limit": 0.9, "unit": "%", "op": "<", "gauge": gauge,
                     "measured": f"{value:.2%}", "threshold": "< 90.00%"},
                    {"label": "state", "value": None, "limit": None, "unit": "", "op": "==", "gauge": "",
                     "measured": "available", "threshold": "== available"}]
        outcome = "fail" if (index + number) % 17 == 0 else "pass"
        found.append(Remembered(check, "", outcome, readings, "" if outcome == "pass" else f"{check}: measured, threshold",
                                duration_seconds=0.05))
    return found


def seed(settings: HistorySettings, now: float) -> int:
    """A year of runs of every environment, written as a bulk of rows (a year of record() calls would measure the
    seeding, not the suite)."""
    store = open_store(settings, lambda reference, key: os.environ[reference[4:]])
    rows = 0
    for env_number in range(ENVIRONMENTS):
        env = f"env-{env_number:02}"
        runs, kept = [], []
        for index in range(DAYS * RUNS_A_DAY):
            at = now - DAYS * DAY + index * DAY / RUNS_A_DAY
            run = Run(uuid.uuid4().hex, env, at, "1.0", "morning")
            runs.append((run.id, env, at, "1.0", "morning", run.by))
            kept += [_row(run, result) for result in results(at, index)]
        with store._writing(env) as execute:
            execute("INSERT INTO entmoot_runs (id, env, at, version, selection, by_whom) VALUES (?, ?, ?, ?, ?, ?)", runs)
            execute(f"INSERT INTO entmoot_results VALUES ({', '.join('?' * 16)})", kept)
        rows += len(kept)
    store.record(Run(uuid.uuid4().hex, "env-00", now - 60, "1.0", "morning"), results(now - 60, 0))  # the states
    store.close()
    return rows


def measure(name: str, settings: HistorySettings, runs: int) -> None:
    now = time.time()
    began = time.perf_counter()
    rows = seed(settings, now)
    print(f"{name}: seeded {rows} results ({ENVIRONMENTS} environments x {DAYS} days x {RUNS_A_DAY} runs x {len(CHECKS)} checks) "
          f"in {time.perf_counter() - began:.0f} s")
    resolve = lambda reference, key: os.environ[reference[4:]]  # noqa: E731
    costs, reads, writes, queries = [], [], [], []
    for index in range(runs):
        at = now + index
        began = time.perf_counter()
        store = open_store(settings, resolve)
        store.states("env-00")
        store.gauge_readings("env-00", at - settings.trend_days * DAY)
        store.last_matched("env-00")
        read = time.perf_counter()
        store.record(Run(uuid.uuid4().hex, "env-00", at, "1.0", "morning"), results(at, index))
        store.close()
        done = time.perf_counter()
        costs.append(done - began)
        reads.append(read - began)
        writes.append(done - read)
        store = open_store(settings, resolve)
        began = time.perf_counter()
        found = store.results("env-03", "rds.free-storage", now - 365 * DAY)
        queries.append(time.perf_counter() - began)
        store.close()
    ms = lambda values: f"{statistics.median(values) * 1000:6.1f} ms"  # noqa: E731
    print(f"{name}: a morning run's history (open, read, write 20 results), median of {runs}: {ms(costs)} "
          f"(read {ms(reads).strip()}, write {ms(writes).strip()}; target: at most 20 ms)")
    print(f"{name}: history of one check over a year ({len(found)} runs), median of {runs}: {ms(queries)} (target: at most 100 ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        measure("SQLite", HistorySettings(path=str(Path(scratch) / "history.sqlite3")), arguments.runs)
    with postgres_server() as dsn:
        os.environ["ENTMOOT_BENCH_HISTORY_DSN"] = dsn
        measure("PostgreSQL", HistorySettings(dsn="env:ENTMOOT_BENCH_HISTORY_DSN"), arguments.runs)


if __name__ == "__main__":
    with recorded("history"):
        main()
