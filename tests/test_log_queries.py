"""The sandbox's CloudWatch Logs semantics (filter patterns, Logs Insights) and the CloudWatch log backend over them.

The runbook's filter patterns are shown wrong here, against the semantics AWS documents: a space-delimited
pattern names every field, a term is not a regular expression.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, UTC

import boto3
import pytest

from entmoot_ops.clients import Clients
from entmoot_ops.config import load_environment
from entmoot_ops.logsearch import cloudwatch as cloudwatch_logs
from entmoot_ops.probes.cloudwatch import Window
from entmoot_ops.sandbox.log_queries import QueryError, filter_pattern, run_query
from entmoot_ops.sandbox import aws as sandbox_aws
from entmoot_ops.sandbox import moto_extensions

NOW = int(time.time() * 1000)


def _line(i: int, *, level: str = "INFO", path: str = "/api/projects/1", ms: float = 12.0, error: str | None = None) -> str:
    line = {"level": level, "request_id": f"req-{i}", "method": "GET", "path": path, "status": 500 if error else 200,
            "duration_ms": ms}
    if error:
        line["error"] = error
    return json.dumps(line)


EVENTS = [
    *((NOW + i, _line(i), "s", "g") for i in range(20)),
    *((NOW + 100 + i, _line(100 + i, level="ERROR", error="DatabaseError: QueuePool limit reached"), "s", "g") for i in range(6)),
    *((NOW + 200 + i, _line(200 + i, level="ERROR", error="ReadTimeout: elevation API"), "s", "g") for i in range(3)),
    *((NOW + 300 + i, _line(300 + i, path="/api/buildings", ms=1500.0 + 100 * i), "s", "g") for i in range(10)),
    (NOW + 400, "plain text line with ERROR in it", "s", "g"),
]


def _matching(pattern: str) -> int:
    matches = filter_pattern(pattern)
    return sum(matches(message) for _, message, _, _ in EVENTS)


def test_json_patterns_select_by_field():
    assert _matching('{ $.level = "ERROR" }') == 9
    assert _matching('{ $.level = "ERROR" && $.error = "DatabaseError*" }') == 6
    assert _matching("{ $.duration_ms >= 1000 }") == 10
    assert _matching('{ $.status = 500 || $.path = "/api/buildings" }') == 19


def test_the_runbook_patterns_do_not_find_the_errors():
    # "[ERROR]" is a space-delimited pattern of one field: only one-word lines match it.
    assert _matching("[ERROR]") == 0
    # CloudWatch patterns are not regular expressions: ".*" is literal text.
    assert _matching("ERROR.*DatabaseError") == 0
    # "[duration > 1000]" compares the only field of one-field lines; the real lines have many.
    assert _matching("[duration > 1000]") == 0
    # What the runbook means:
    assert _matching("ERROR DatabaseError") == 6
    assert _matching('[first, ...]') == len(EVENTS)


def test_insights_groups_counts_and_percentiles():
    groups = run_query(cloudwatch_logs.ERROR_GROUPS_QUERY.format(limit=10), EVENTS)
    assert [(g["error"], g["events"], g["sample_request_id"]) for g in groups] == [
        ("DatabaseError: QueuePool limit reached", "6", "req-100"), ("ReadTimeout: elevation API", "3", "req-200")]
    assert datetime.strptime(groups[0]["first_seen"], "%Y-%m-%d %H:%M:%S.%f") <= datetime.strptime(groups[0]["last_seen"], "%Y-%m-%d %H:%M:%S.%f")
    assert run_query(cloudwatch_logs.ERROR_TOTAL_QUERY, EVENTS) == [{"errors": "9"}]
    slow = run_query(cloudwatch_logs.SLOW_PATHS_QUERY.format(min_ms=1000, limit=5), EVENTS)
    assert slow == [{"path": "/api/buildings", "requests": "10", "p95_ms": "2400", "max_ms": "2400"}]
    assert run_query('filter level = "ERROR" | stats count(*) as n by bin(1h)', EVENTS)[0]["n"] == "9"


def test_an_unsupported_query_is_malformed_not_ignored():
    with pytest.raises(QueryError):
        run_query("filter level = | stats count(*)", EVENTS)
    with pytest.raises(QueryError):
        run_query("dedup level", EVENTS)


@pytest.fixture
def sandbox_clients(sandbox, monkeypatch):
    """Clients of an environment (the sandbox's, or a variant of it) in this process, as a check has them."""
    for name, value in sandbox.env.items():
        monkeypatch.setenv(name, value)
    opened = []

    def make(directory=None) -> Clients:
        opened.append(Clients(load_environment("sandbox", directory)))
        return opened[-1]
    yield make
    for clients in opened:
        clients.close()


@pytest.fixture
def put(sandbox):
    """Put log lines into the sandbox's group, in streams of their own that are deleted after the test: lines left
    behind would be other tests' slow endpoints and errors."""
    logs = boto3.client("logs", endpoint_url=sandbox.env["ENTMOOT_SANDBOX_AWS_ENDPOINT_URL"], region_name="us-east-1",
                        **sandbox_aws.CREDENTIALS)  # the sandbox's own key: a test's set-up may write
    streams = []

    def lines(messages: list[str]) -> None:
        streams.append(f"test/{time.monotonic_ns()}")
        logs.create_log_stream(logGroupName="/ecs/entmoot-sandbox", logStreamName=streams[-1])
        now = int(time.time() * 1000)
        logs.put_log_events(logGroupName="/ecs/entmoot-sandbox", logStreamName=streams[-1],
                            logEvents=[{"timestamp": now, "message": m} for m in messages])
    yield lines
    for stream in streams:
        logs.delete_log_stream(logGroupName="/ecs/entmoot-sandbox", logStreamName=stream)


def test_the_cloudwatch_backend_answers_through_insights_with_a_constant_number_of_calls(put, sandbox_clients):
    clients = sandbox_clients()
    marker = f"TestMarker{time.monotonic_ns()}"
    put([_line(i, level="ERROR", error=f"{marker}: boom") for i in range(7)])
    window = Window(datetime.now(UTC) - timedelta(minutes=2), datetime.now(UTC) + timedelta(seconds=2), 60)
    search = cloudwatch_logs.CloudWatchLogs(clients)
    groups = search.error_groups(window, 100)
    mine = next(g for g in groups.groups if g.message.startswith(marker))
    assert mine.count == 7 and mine.sample_request_id == "req-0" and groups.source.startswith("CloudWatch Logs Insights")
    # Two StartQuery, then GetQueryResults until each completes: the sandbox completes a query 0.3 s after it
    # starts, and the polls wait 0.1 s, then 0.2 s: at most three each, whatever the volume.
    assert groups.api_calls <= 2 + 2 * 3, groups.api_calls
    put([_line(i, level="ERROR", error=f"{marker}: boom") for i in range(70)])
    assert search.error_groups(window, 100).api_calls <= 2 + 2 * 3


def test_a_query_running_for_several_polls_is_waited_for(put, sandbox, sandbox_clients):
    marker = f"TestMarker{time.monotonic_ns()}"
    put([_line(i, level="ERROR", error=f"{marker}: boom") for i in range(3)])
    window = Window(datetime.now(UTC) - timedelta(minutes=2), datetime.now(UTC) + timedelta(seconds=2), 60)
    with sandbox.fault("insights_slow", seconds=2):
        groups = cloudwatch_logs.CloudWatchLogs(sandbox_clients()).error_groups(window, 100)
    assert groups.source.startswith("CloudWatch Logs Insights"), groups.source
    assert next(g for g in groups.groups if g.message.startswith(marker)).count == 3
    assert groups.api_calls >= 2 + 2 * 4  # Scheduled, then Running poll after poll, then Complete


def test_a_failed_query_falls_back_to_the_raw_events_and_says_why(put, sandbox, sandbox_clients):
    marker = f"TestMarker{time.monotonic_ns()}"
    put([_line(i, level="ERROR", error=f"{marker}: boom") for i in range(4)])
    window = Window(datetime.now(UTC) - timedelta(minutes=2), datetime.now(UTC) + timedelta(seconds=2), 60)
    with sandbox.fault("insights_failed"):
        groups = cloudwatch_logs.CloudWatchLogs(sandbox_clients()).error_groups(window, 100)
    assert groups.source.startswith("CloudWatch FilterLogEvents") and "a query ended failed" in groups.source, groups.source
    assert next(g for g in groups.groups if g.message.startswith(marker)).count == 4


def test_insights_limits_as_aws_sets_them(sandbox, monkeypatch):
    """30 queries at once per account, then LimitExceededException; StopQuery cancels; at most 10,000 rows."""
    logs = boto3.client("logs", endpoint_url=sandbox.env["ENTMOOT_SANDBOX_AWS_ENDPOINT_URL"], region_name="us-east-1",
                        **sandbox_aws.CREDENTIALS)
    now = int(time.time())
    with sandbox.fault("insights_slow", seconds=30):
        started = [logs.start_query(logGroupName=sandbox_aws.LOG_GROUP, startTime=now - 60, endTime=now,
                                    queryString="fields @message | limit 1")["queryId"] for _ in range(30)]
        try:
            with pytest.raises(logs.exceptions.LimitExceededException):
                logs.start_query(logGroupName=sandbox_aws.LOG_GROUP, startTime=now - 60, endTime=now, queryString="fields @message")
        finally:
            assert all(logs.stop_query(queryId=query)["success"] for query in started)
    assert {logs.get_query_results(queryId=query)["status"] for query in started} == {"Cancelled"}
    monkeypatch.setattr(moto_extensions.logs, "insights_timing", {"scheduled": 0, "complete": 0})
    many = moto_extensions.logs._TimedQuery("q", 0, 1, "fields @message", [])
    many.results = [{"@message": str(i)} for i in range(10_001)]
    answer = many.to_result_json()
    assert answer["status"] == "Complete" and len(answer["results"]) == 10_000
    assert answer["results"][0] == [{"field": "@message", "value": "0"}]  # values as strings


def test_the_filter_fallback_reads_bounded_pages(put, environments, sandbox_clients):
    clients = sandbox_clients(environments(replace={'group = "/ecs/entmoot-sandbox"':
                                                    'group = "/ecs/entmoot-sandbox"\ninsights = false\nmax_pages = 2'}))
    marker = f"TestMarker{time.monotonic_ns()}"
    put([_line(i, level="ERROR", error=f"{marker}: boom", path="/api/slow", ms=2000.0 + i) for i in range(5)])
    window = Window(datetime.now(UTC) - timedelta(minutes=2), datetime.now(UTC) + timedelta(seconds=2), 60)
    search = cloudwatch_logs.CloudWatchLogs(clients)
    groups = search.error_groups(window, 100)
    assert groups.source.startswith("CloudWatch FilterLogEvents") and groups.api_calls <= 2
    assert next(g for g in groups.groups if g.message.startswith(marker)).count == 5
    slow = search.slow_paths(window, 1000, 5)
    assert next(p for p in slow.paths if p.path == "/api/slow").p95_ms == 2004.0
