"""A pytest plugin for bench/runbook_morning.py: when each process of a run reaches each phase, against the moment
the run was started (``BENCH_PHASES_T0``, seconds since the epoch), appended to ``BENCH_PHASES`` as JSON lines."""

import json
import os
import time

import pytest

_reported = set()


def _at(phase: str) -> None:
    with open(os.environ["BENCH_PHASES"], "a") as handle:
        handle.write(json.dumps({"process": os.environ.get("PYTEST_XDIST_WORKER", "controller"), "phase": phase,
                                 "seconds": time.time() - float(os.environ["BENCH_PHASES_T0"])}) + "\n")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    _at("configured")  # interpreter, imports and plugins done


def pytest_collection_finish(session):
    _at("collected")


@pytest.hookimpl(trylast=True)
def pytest_xdist_node_collection_finished(node, ids):
    if "preflights done" not in _reported:  # the plugin's own hook ran the preflights before this one
        _reported.add("preflights done")
        _at("preflights done")


def pytest_runtest_logreport(report):
    if report.when == "call" and "first check done" not in _reported:
        _reported.add("first check done")
        _at("first check done")


def pytest_sessionfinish(session):
    _at("checks done")


def print_phases(run, state_file, scratch, *args: str) -> None:
    """Run ``run(state_file, reports_dir, *args, env=...)`` with this plugin and print when each phase was reached."""
    from pathlib import Path

    phases = Path(scratch) / "phases.jsonl"
    phases.unlink(missing_ok=True)
    wall = run(state_file, Path(scratch) / "phases", *args, "-p", "phases",
               env={"BENCH_PHASES": str(phases), "BENCH_PHASES_T0": str(time.time()), "PYTHONPATH": os.path.dirname(__file__)})[0]
    seen: dict[str, list[float]] = {}
    for line in phases.read_text().splitlines():
        entry = json.loads(line)
        who = "controller" if entry["process"] == "controller" else "workers"
        seen.setdefault(f"{who} {entry['phase']}", []).append(entry["seconds"])
    print(f"  where its time went (seconds from the start; workers: the first and the last; whole process {wall:.2f} s):")
    for name, moments in sorted(seen.items(), key=lambda item: min(item[1])):
        print(f"    {name:34} " + (f"{min(moments):5.2f}" if len(moments) == 1 else f"{min(moments):5.2f} .. {max(moments):5.2f}"))
