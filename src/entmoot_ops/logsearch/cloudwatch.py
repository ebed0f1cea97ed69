"""CloudWatch Logs: Logs Insights aggregates on the server; a bounded FilterLogEvents read is the fallback.

The runbook's patterns do not do what they say. ``[ERROR]`` is a space-delimited pattern of *one* field (it
matches one-word lines); ``ERROR.*DatabaseError`` is literal text, not a regular expression; ``[duration > 1000]``
compares the first and only field. On JSON lines the patterns are ``{ $.level = "ERROR" }`` and
``{ $.duration_ms >= 1000 }``.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, UTC
from typing import TYPE_CHECKING, Any

import botocore.exceptions

from entmoot_ops.errors import DependencyError, OpsError
from entmoot_ops.logsearch.model import (NO_ERROR_TEXT, Entry, ErrorGroup, ErrorGroups, SlowPath, SlowPaths, group_errors,
                                        group_slow, merge_groups)
from entmoot_ops.probes import aws_error, measuring
from entmoot_ops.probes.cloudwatch import Window
from entmoot_ops.redaction import redact
from entmoot_ops import iam
from entmoot_ops.iam import needs

if TYPE_CHECKING:
    from entmoot_ops.clients import Clients

ERRORS_PATTERN = '{ $.level = "ERROR" }'
SLOW_PATTERN = "{{ $.duration_ms >= {min_ms:g} }}"
ERROR_GROUPS_QUERY = ('filter level = "ERROR" | stats count(*) as events, min(@timestamp) as first_seen, '
                      "max(@timestamp) as last_seen, earliest(request_id) as sample_request_id by error "
                      "| sort events desc | limit {limit}")
ERROR_TOTAL_QUERY = 'filter level = "ERROR" | stats count(*) as errors'
SLOW_PATHS_QUERY = ("filter duration_ms >= {min_ms:g} | stats count(*) as requests, pct(duration_ms, 95) as p95_ms, "
                    "max(duration_ms) as max_ms by path | sort p95_ms desc | limit {limit}")
POLL_SECONDS = 0.5
FIRST_POLL_SECONDS = 0.1
DEPENDENCY = "AWS CloudWatch Logs"


def _moment(text: str | None) -> datetime | None:
    """Insights prints times as ``2026-11-28 23:46:00.123`` (UTC)."""
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)


def _row(fields: list[dict[str, str]]) -> dict[str, str]:
    return {f["field"]: f["value"] for f in fields}


class CloudWatchLogs:
    def __init__(self, clients: Clients):
        self.settings = clients.env.logs
        self.logs = clients.aws("logs")
        self.calls = 0

    def error_groups(self, window: Window, limit: int) -> ErrorGroups:
        calls_before = self.calls
        results = self._insights({ERROR_GROUPS_QUERY.format(limit=limit): ("events",), ERROR_TOTAL_QUERY: ("errors",)}, window)
        if isinstance(results, str):
            entries, complete = self._filter(ERRORS_PATTERN, window)
            return group_errors(entries, limit=limit, complete=complete, source=self._fallback_source(results),
                                window=window, api_calls=self.calls - calls_before)
        grouped, total = results
        groups = merge_groups(ErrorGroup(message=r.get("error", NO_ERROR_TEXT), count=int(r["events"]),
                                         first_seen=_moment(r.get("first_seen")), last_seen=_moment(r.get("last_seen")),
                                         sample_request_id=r.get("sample_request_id")) for r in grouped)
        errors = int(total[0]["errors"]) if total else 0
        return ErrorGroups(source=self._source("Logs Insights"), window=window.describe(), errors=errors, groups=groups,
                           complete=sum(g.count for g in groups) == errors, api_calls=self.calls - calls_before)

    def slow_paths(self, window: Window, min_ms: float, limit: int) -> SlowPaths:
        calls_before = self.calls
        results = self._insights({SLOW_PATHS_QUERY.format(min_ms=min_ms, limit=limit): ("requests", "p95_ms", "max_ms")}, window)
        if isinstance(results, str):
            entries, complete = self._filter(SLOW_PATTERN.format(min_ms=min_ms), window)
            return group_slow(entries, min_ms=min_ms, limit=limit, complete=complete, source=self._fallback_source(results),
                              window=window, api_calls=self.calls - calls_before)
        paths = tuple(SlowPath(redact(r.get("path", "?")), int(r["requests"]), float(r["p95_ms"]), float(r["max_ms"])) for r in results[0])
        return SlowPaths(source=self._source("Logs Insights"), window=window.describe(), min_ms=min_ms, paths=paths,
                         complete=True, api_calls=self.calls - calls_before)

    def _source(self, method: str) -> str:
        return f"CloudWatch {method} {self.settings.group}"

    def _fallback_source(self, why: str) -> str:
        return f"{self._source('FilterLogEvents')} (Logs Insights not used: {why})"

    def _call(self, operation: str, **kwargs: Any) -> Any:
        self.calls += 1
        return getattr(self.logs, operation)(**kwargs)

    @needs("logs:StartQuery", resources=iam.LOG_GROUP)
    @needs("logs:GetQueryResults", "logs:StopQuery")
    def _insights(self, queries: dict[str, tuple[str, ...]], window: Window) -> list[list[dict[str, str]]] | str:
        """Run the queries side by side, each with the fields its rows must carry. Where Insights is off, denied, or
        answers something unusable (a failed query, rows without the requested fields), the reason why: the caller
        falls back to FilterLogEvents, which needs no field of Insights' making."""
        if not self.settings.insights:
            return "logs.insights = false"
        with measuring(DEPENDENCY):
            ids: dict[str, tuple[str, ...]] = {}
            results: dict[str, list[dict[str, str]]] = {}
            try:
                for query, fields in queries.items():
                    ids[self._call("start_query", logGroupName=self.settings.group, queryString=query,
                                   startTime=int(window.start.timestamp()), endTime=int(window.end.timestamp()))["queryId"]] = fields
            except botocore.exceptions.ClientError as exc:
                return self._denied(exc, ids, results)
            deadline = time.monotonic() + self.settings.query_timeout_seconds
            polls = 0
            while len(results) < len(ids):
                for query_id in (i for i in ids if i not in results):
                    try:
                        answer = self._call("get_query_results", queryId=query_id)
                    except botocore.exceptions.ClientError as exc:
                        return self._denied(exc, ids, results)
                    status = answer.get("status")
                    if status == "Complete":
                        rows = [_row(fields) for fields in answer.get("results", [])]
                        missing = sorted({f for row in rows for f in ids[query_id] if f not in row})
                        if missing:
                            self._stop_all(ids, results)
                            return f"its rows lack the requested fields {', '.join(missing)}"
                        results[query_id] = rows
                    elif status not in ("Scheduled", "Running"):
                        self._stop_all(ids, results)
                        return f"a query ended {str(status).lower()}"
                if len(results) < len(ids):
                    if time.monotonic() + POLL_SECONDS > deadline:
                        self._stop_all(ids, results)
                        raise DependencyError(DEPENDENCY, f"Logs Insights query not complete after "
                                                          f"{self.settings.query_timeout_seconds:g} s (logs.query_timeout_seconds)",
                                              reachable=True)
                    # Soon at first (a small query completes in a fraction of a second), then every POLL_SECONDS.
                    time.sleep(min(POLL_SECONDS, FIRST_POLL_SECONDS * 2 ** polls))
                    polls += 1
        return [results[i] for i in ids]

    def _denied(self, exc: botocore.exceptions.ClientError, ids: dict[str, Any], done: dict[str, Any]) -> str:
        """A role may hold some of Insights' actions and not others: any denial is a reason to fall back."""
        problem = aws_error(DEPENDENCY, exc)
        if "denied" not in str(problem):
            raise problem from None
        self._stop_all(ids, done)
        return str(problem).removeprefix(f"{DEPENDENCY} refused the request: ")

    def _stop_all(self, ids: dict[str, Any], done: dict[str, Any]) -> None:
        for query_id in (i for i in ids if i not in done):
            self._stop(query_id)

    def _stop(self, query_id: str) -> None:
        try:  # a query left running keeps costing; stopping it is best effort, the timeout is what is reported
            self._call("stop_query", queryId=query_id)
        except (botocore.exceptions.ClientError, OpsError):  # OpsError: whatever else the boundary turned into one line
            pass

    @needs("logs:FilterLogEvents", resources=iam.LOG_GROUP)
    def _filter(self, pattern: str, window: Window) -> tuple[list[Entry], bool]:
        entries: list[Entry] = []
        kwargs: dict[str, Any] = dict(logGroupName=self.settings.group, filterPattern=pattern,
                                      startTime=int(window.start.timestamp() * 1000), endTime=int(window.end.timestamp() * 1000))
        token = None
        with measuring(DEPENDENCY):
            for _ in range(self.settings.max_pages):
                page = self._call("filter_log_events", **kwargs)
                entries.extend(_entry(event) for event in page.get("events", []))
                token = page.get("nextToken")
                if not token:
                    break
                kwargs["nextToken"] = token
        return [e for e in entries if e is not None], token is None


def _entry(event: dict[str, Any]) -> Entry | None:
    try:
        fields = json.loads(event["message"])
    except ValueError:
        return None
    return Entry(at=datetime.fromtimestamp(event["timestamp"] / 1000, UTC), fields=fields if isinstance(fields, dict) else {})
