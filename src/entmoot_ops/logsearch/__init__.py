"""Log analysis behind one interface, whatever holds the API's logs: CloudWatch Logs, GCP Cloud Logging, Azure Monitor.

The application writes one JSON object per request (``level``, ``request_id``, ``method``, ``path``, ``status``,
``duration_ms``, ``error``). Every backend answers the two questions the incident bundles ask of a window:
errors grouped by message, and slow requests grouped by path. A backend that aggregates on the server (Logs
Insights, Log Analytics) costs a constant number of calls whatever the volume; one that reads raw entries reads a
bounded number of pages and says when it did not reach the end.

The answers and the grouping live in :mod:`entmoot_ops.logsearch.model`, which the backends import; this package
chooses a backend (importing it on use) and names the model's parts for its callers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from entmoot_ops.logsearch.model import (ERROR_KINDS, NO_ERROR_TEXT, Entry, ErrorGroup, ErrorGroups, LogSearch, SlowPath, SlowPaths,
                                         group_errors, group_slow, kind_of, merge_groups, percentile)

if TYPE_CHECKING:
    from entmoot_ops.clients import Clients

__all__ = ["ERROR_KINDS", "NO_ERROR_TEXT", "Entry", "ErrorGroup", "ErrorGroups", "LogSearch", "SlowPath", "SlowPaths", "for_environment",
           "group_errors", "group_slow", "kind_of", "merge_groups", "percentile"]


def for_environment(clients: Clients) -> LogSearch:
    backend = clients.env.logs.backend
    if backend == "gcp":
        from entmoot_ops.logsearch.gcp import GcpLogging  # the SDK is imported only where it is used
        return GcpLogging(clients)
    if backend == "azure":
        from entmoot_ops.logsearch.azure import AzureMonitor
        return AzureMonitor(clients)
    from entmoot_ops.logsearch.cloudwatch import CloudWatchLogs
    return CloudWatchLogs(clients)
