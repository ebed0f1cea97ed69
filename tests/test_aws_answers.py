"""An AWS-compatible endpoint that answers otherwise than AWS documents: a denial as XML to a JSON client, an empty
403, throttling, an HTML page, Logs Insights rows without the requested fields. Each is one line naming the service,
the operation and what to do, and a log read falls back to FilterLogEvents instead of turning a verdict into an ERROR.

The endpoint is a real HTTP server on loopback; the clients are the suite's own, built from an environment file.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, UTC
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from entmoot_ops.check import best_effort, Unavailable
from entmoot_ops.clients import Clients
from entmoot_ops.config import load_environment
from entmoot_ops.errors import DependencyError
from entmoot_ops.logsearch.cloudwatch import CloudWatchLogs
from entmoot_ops.probes import measuring
from entmoot_ops.probes.cloudwatch import Window

ROOT = Path(__file__).resolve().parent.parent
DENIED_XML = ('<?xml version="1.0" encoding="UTF-8"?><ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>'
              "<Message>User: arn:aws:iam::123456789012:user/readonly is not authorized to perform: logs:StartQuery</Message>"
              "</Error><RequestId>abc</RequestId></ErrorResponse>")
ERROR_LINE = json.dumps({"level": "ERROR", "error": "QueuePool limit reached", "request_id": "r1", "path": "/api/projects/1",
                         "status": 500, "duration_ms": 12})


class Endpoint:
    """Answers each JSON-protocol operation (X-Amz-Target) or query-protocol Action with a scripted reply."""

    def __init__(self) -> None:
        self.replies: dict[str, tuple[int, str, str]] = {}
        self.calls: list[str] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the standard library's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                target = (self.headers.get("X-Amz-Target") or "").rsplit(".", 1)[-1]
                operation = target or next((p.split("=", 1)[1] for p in body.split("&") if p.startswith("Action=")), "?")
                endpoint.calls.append(operation)
                status, kind, text = endpoint.replies.get(operation, (404, "text/plain", "not scripted"))
                payload = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reply(self, operation: str, status: int, body: object, kind: str = "application/x-amz-json-1.1") -> None:
        self.replies[operation] = (status, kind, body if isinstance(body, str) else json.dumps(body))


@pytest.fixture
def endpoint():
    server = Endpoint()
    yield server
    server.server.shutdown()


@pytest.fixture
def clients(endpoint, tmp_path, monkeypatch):
    text = (ROOT / "environments" / "sandbox.toml").read_text()
    text = text.replace('endpoint_url = "env:ENTMOOT_SANDBOX_AWS_ENDPOINT_URL"', f'endpoint_url = "{endpoint.url}"')
    text = text.replace("aws_max_attempts = 1", "aws_max_attempts = 2")
    (tmp_path / "sandbox.toml").write_text(text)
    monkeypatch.setenv("ENTMOOT_SANDBOX_AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("ENTMOOT_SANDBOX_AWS_SECRET_ACCESS_KEY", "secret")
    found = Clients(load_environment("sandbox", tmp_path))
    yield found
    found.close()


def _window() -> Window:
    return Window.last(30, 60)


def _filter_answer() -> dict:
    now = int(time.time() * 1000)
    return {"events": [{"timestamp": now - 1000, "message": ERROR_LINE, "logStreamName": "s", "eventId": "1"}] * 3}


def test_denied_insights_falls_back_and_the_evidence_names_why(endpoint, clients):
    endpoint.reply("StartQuery", 403, DENIED_XML, kind="text/xml")
    endpoint.reply("FilterLogEvents", 200, _filter_answer())
    groups = CloudWatchLogs(clients).error_groups(_window(), 10)
    assert groups.errors == 3 and groups.groups[0].message == "QueuePool limit reached"
    assert groups.source.startswith("CloudWatch FilterLogEvents /ecs/")
    assert "Logs Insights not used: denied logs:StartQuery (AccessDenied)" in groups.source


def test_insights_rows_without_the_requested_fields_fall_back(endpoint, clients):
    """What moto itself answers, and so may an AWS-compatible endpoint: rows of @ptr only, whatever the query."""
    endpoint.reply("StartQuery", 200, {"queryId": "q-1"})
    endpoint.reply("GetQueryResults", 200, {"status": "Complete", "results": [[{"field": "@ptr", "value": "abc"}]]})
    endpoint.reply("StopQuery", 200, {"success": True})
    endpoint.reply("FilterLogEvents", 200, _filter_answer())
    groups = CloudWatchLogs(clients).error_groups(_window(), 10)
    assert groups.errors == 3
    assert "Logs Insights not used: its rows lack the requested fields" in groups.source
    slow = CloudWatchLogs(clients).slow_paths(_window(), 1000, 5)
    assert "its rows lack the requested fields max_ms, p95_ms, requests" in slow.source


def test_insights_running_for_several_polls_then_failed_falls_back(endpoint, clients):
    endpoint.reply("StartQuery", 200, {"queryId": "q-1"})
    endpoint.reply("GetQueryResults", 200, {"status": "Failed", "results": []})
    endpoint.reply("StopQuery", 200, {"success": True})
    endpoint.reply("FilterLogEvents", 200, _filter_answer())
    groups = CloudWatchLogs(clients).error_groups(_window(), 10)
    assert "Logs Insights not used: a query ended failed" in groups.source and groups.errors == 3


def test_a_denial_names_the_iam_action_whatever_the_body(endpoint, clients):
    endpoint.reply("DescribeLogGroups", 403, "", kind="text/plain")  # a bare status, no body at all
    with pytest.raises(DependencyError) as denied, measuring("AWS CloudWatch Logs"):
        clients.aws("logs").describe_log_groups()
    assert str(denied.value) == "AWS CloudWatch Logs refused the request: denied logs:DescribeLogGroups (AccessDenied)"
    assert denied.value.fix.startswith("grant logs:DescribeLogGroups to the role this run uses")
    endpoint.reply("DescribeAlarms", 403, DENIED_XML.replace("logs:StartQuery", "cloudwatch:DescribeAlarms"), kind="text/xml")
    with pytest.raises(DependencyError) as denied, measuring("AWS CloudWatch"):
        clients.aws("cloudwatch").describe_alarms()
    assert "denied cloudwatch:DescribeAlarms (AccessDenied)" in str(denied.value) and "<?xml" not in str(denied.value)


def test_throttling_says_it_is_throttling(endpoint, clients):
    endpoint.reply("FilterLogEvents", 400, {"__type": "ThrottlingException", "message": "Rate exceeded"})
    with pytest.raises(DependencyError) as throttled, measuring("AWS CloudWatch Logs"):
        clients.aws("logs").filter_log_events(logGroupName="/ecs/x")
    assert str(throttled.value) == ("AWS CloudWatch Logs refused the request: throttled on logs:FilterLogEvents "
                                    "(ThrottlingException) after 2 attempts")
    assert "rate-limiting" in throttled.value.fix
    assert endpoint.calls.count("FilterLogEvents") == 2  # botocore's standard retries, bounded by timeouts.aws_max_attempts


def test_an_html_page_is_an_unexpected_answer_naming_the_operation(endpoint, clients):
    endpoint.reply("DescribeReplicationGroups", 500, "<html><body><h1>500 Internal Server Error</h1></body></html>", kind="text/html")
    with pytest.raises(DependencyError) as odd, measuring("AWS ElastiCache"):
        clients.aws("elasticache").describe_replication_groups(ReplicationGroupId="g")
    text = str(odd.value)
    assert text == ("AWS ElastiCache refused the request: unexpected answer from AWS ElastiCache "
                    "elasticache:DescribeReplicationGroups: HTTP 500, not an AWS error body (HTML of 60 characters)")
    assert "aws.endpoint_url" in odd.value.fix
    assert "ResponseParserError" not in text.split(":", 1)[0] and len(text.splitlines()) == 1


def test_a_missing_field_is_an_unexpected_answer_not_a_bare_key(endpoint, clients):
    endpoint.reply("DescribeLogGroups", 200, {"unexpected": []})
    with pytest.raises(DependencyError) as odd, measuring("AWS CloudWatch Logs"):
        clients.aws("logs").describe_log_groups()["logGroups"]
    assert str(odd.value) == ("AWS CloudWatch Logs refused the request: unexpected answer from AWS CloudWatch Logs "
                              "logs:DescribeLogGroups: missing field 'logGroups'")


def test_evidence_reads_are_best_effort():
    def broken() -> None:
        return {}["events"]
    found = best_effort("top errors", broken)
    assert isinstance(found, Unavailable) and str(found) == "unavailable: missing field 'events'"
    assert best_effort("fine", lambda: 3) == 3


def test_window_of_the_fallback_is_bounded(endpoint, clients):
    """A fallback read stops at logs.max_pages and says it is incomplete: it never pages without end."""
    endpoint.reply("StartQuery", 403, DENIED_XML, kind="text/xml")
    page = _filter_answer() | {"nextToken": "more"}
    endpoint.reply("FilterLogEvents", 200, page)
    groups = CloudWatchLogs(clients).error_groups(Window(datetime.now(UTC) - timedelta(minutes=5), datetime.now(UTC), 60), 10)
    assert not groups.complete and endpoint.calls.count("FilterLogEvents") == clients.env.logs.max_pages


def test_a_page_instead_of_an_answer_is_an_unexpected_answer(endpoint, clients):
    """HTTP 200 with a web page (a captive portal, a proxy's login): botocore cannot parse it at all."""
    for page, what in (("<html><body>Please log in</body></html>", "missing field 'DescribeReplicationGroupsResult'"),
                       ("Please log in", "not a valid AWS response (")):
        endpoint.reply("DescribeReplicationGroups", 200, page, kind="text/html")
        with pytest.raises(DependencyError) as odd, measuring("AWS ElastiCache"):
            clients.aws("elasticache").describe_replication_groups()
        assert str(odd.value).startswith("AWS ElastiCache refused the request: unexpected answer from AWS ElastiCache "
                                         f"elasticache:DescribeReplicationGroups: {what}"), str(odd.value)
        assert len(str(odd.value).splitlines()) == 1 and "aws.endpoint_url" in odd.value.fix
