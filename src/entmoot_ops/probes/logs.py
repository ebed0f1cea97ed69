"""The API's logs over a window, through the environment's log backend (:mod:`entmoot_ops.logsearch`)."""

from __future__ import annotations

from entmoot_ops import logsearch
from entmoot_ops.clients import Clients
from entmoot_ops.logsearch import ErrorGroups, SlowPaths
from entmoot_ops.probes.cloudwatch import Window

# Enough groups that the shares of the Common Causes are exact in all but a storm of distinct messages.
ERROR_GROUPS_BOUND = 100


def error_groups(clients: Clients, window: Window) -> ErrorGroups:
    """Errors grouped by message (count, first and last seen, a sample request id), most frequent first."""
    return clients.remember(("log-errors", window), lambda: logsearch.for_environment(clients).error_groups(window, ERROR_GROUPS_BOUND))


def slow_paths(clients: Clients, window: Window, min_ms: float) -> SlowPaths:
    """Requests of at least ``min_ms`` grouped by path, with the p95 per path, slowest first."""
    return clients.remember(("log-slow", window, min_ms),
                            lambda: logsearch.for_environment(clients).slow_paths(window, min_ms, clients.env.logs.top_groups))
