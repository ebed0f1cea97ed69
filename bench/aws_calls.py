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


def pytest_sessionfinish(session):
    with open(os.environ["BENCH_AWS_CALLS"], "w") as handle:
        json.dump({check: dict(counter) for check, counter in calls.items()}, handle)
