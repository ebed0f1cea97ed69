"""A pytest plugin for bench/morning.py: counts the AWS API calls each check makes (botocore before-call events)."""

import json
import os
from collections import Counter, defaultdict

import pytest

from entmoot_ops.clients import Clients

calls: dict[str, Counter] = defaultdict(Counter)
current = {"check": "(setup)"}
original_aws = Clients.aws


def counting_aws(self, service):
    client = original_aws(self, service)
    if not getattr(client, "_bench_counted", False):
        client.meta.events.register("before-call.*.*", lambda event_name, **_: calls[current["check"]].update(
            [":".join(event_name.split(".")[1:3])]))
        client._bench_counted = True
    return client


Clients.aws = counting_aws


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    marker = item.get_closest_marker("check")
    current["check"] = marker.kwargs["id"] if marker else item.nodeid


def print_counts(run, state_file, scratch, label: str) -> None:
    """Run ``run(state_file, reports_dir, *pytest_args, env=...)`` with this plugin and print its AWS calls per check."""
    from pathlib import Path

    counts = Path(scratch) / "aws-calls.json"
    run(state_file, Path(scratch) / "calls", "-p", "aws_calls",
        env={"BENCH_AWS_CALLS": str(counts), "PYTHONPATH": os.path.dirname(__file__)})
    calls = json.loads(counts.read_text())
    print(f"AWS API calls per {label}:")
    for check, operations in sorted(calls.items()):
        print(f"  {check:26} {sum(operations.values()):3}  " + ", ".join(f"{op} x{n}" for op, n in sorted(operations.items())))
    print(f"  {'total':26} {sum(sum(o.values()) for o in calls.values()):3}  target <= 10 for the morning checklist")


def pytest_sessionfinish(session):
    with open(os.environ["BENCH_AWS_CALLS"], "w") as handle:
        json.dump({check: dict(counter) for check, counter in calls.items()}, handle)
