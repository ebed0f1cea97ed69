"""CloudWatch Logs filter patterns and Logs Insights queries answered as AWS does, on AWS's course (Scheduled, Running,
Complete) and quotas."""

from __future__ import annotations

import json
import time
from typing import Any

from moto.core.exceptions import JsonRESTError
from moto.logs import models as logs_models
from moto.logs.responses import LogsResponse

from entmoot_ops.sandbox import log_queries


_original_start_query = logs_models.LogsBackend.start_query


# Logs Insights' timing, as AWS runs a query: Scheduled, then Running, then Complete (seconds after StartQuery).
# A fault may hold queries Running longer, or end them Failed.
insights_timing = {"scheduled": 0.05, "complete": 0.3}


insights_failing = False


INSIGHTS_CONCURRENCY = 30  # queries running at once per account (AWS's quota)


INSIGHTS_MAX_ROWS = 10_000


class _TimedQuery(logs_models.LogQuery):
    """moto's query, answered when AWS would answer it: moto runs it at once, its status follows the clock."""

    def __init__(self, *args: Any, **kwargs: Any):
        self.started, self.ends, self.stopped = time.monotonic(), insights_timing["complete"], False
        self.fails = insights_failing
        super().__init__(*args, **kwargs)

    @property
    def status(self) -> str:
        elapsed = time.monotonic() - self.started
        if self.stopped:
            return "Cancelled"
        if elapsed < insights_timing["scheduled"]:
            return "Scheduled"
        if elapsed < self.ends:
            return "Running"
        return "Failed" if self.fails else "Complete"

    @status.setter
    def status(self, _: str) -> None:
        """moto sets Running then Complete as it runs the query at once: the clock decides instead."""

    def to_result_json(self) -> dict[str, Any]:
        status = self.status
        rows = self.results[:INSIGHTS_MAX_ROWS] if status == "Complete" else []
        return {"results": [[{"field": k, "value": str(v)} for k, v in row.items()] for row in rows], "status": status,
                "statistics": {"recordsMatched": float(len(self.results)), "recordsScanned": float(len(self.results)),
                               "bytesScanned": 0.0}}


def _start_query(self: Any, *args: Any, **kwargs: Any) -> str:
    running = sum(1 for q in self.queries.values() if q.status in ("Scheduled", "Running"))
    if running >= INSIGHTS_CONCURRENCY:
        raise JsonRESTError("LimitExceededException",
                            f"Account maximum query concurrency limit of [{INSIGHTS_CONCURRENCY}] reached.")
    return _original_start_query(self, *args, **kwargs)


def _stop_query(self: LogsResponse) -> str:
    query = self.logs_backend.queries.get(self._get_param("queryId"))
    if query is None:
        raise JsonRESTError("ResourceNotFoundException", "The specified query does not exist.")
    stoppable = query.status in ("Scheduled", "Running")
    query.stopped = query.stopped or stoppable
    return json.dumps({"success": stoppable})


def _malformed(error: log_queries.QueryError) -> JsonRESTError:
    return JsonRESTError("MalformedQueryException", str(error))


def _execute_query(*args: Any, **kwargs: Any) -> list[dict[str, str]]:
    try:
        return log_queries.execute_query(*args, **kwargs)
    except log_queries.QueryError as exc:
        raise _malformed(exc) from None


class _EventMessageFilter(log_queries.EventMessageFilter):
    def __init__(self, pattern: str):
        try:
            super().__init__(pattern)
        except log_queries.QueryError as exc:
            raise JsonRESTError("InvalidParameterException", f"Invalid filter pattern: {exc}") from None


def install() -> None:
    logs_models.execute_query = _execute_query
    logs_models.EventMessageFilter = _EventMessageFilter
    logs_models.LogQuery = _TimedQuery
    logs_models.LogsBackend.start_query = _start_query
    LogsResponse.stop_query = _stop_query
