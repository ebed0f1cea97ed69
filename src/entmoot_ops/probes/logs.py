"""A bounded sample of error lines from a CloudWatch Logs group, grouped by message."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from entmoot_ops.clients import Clients
from entmoot_ops.probes import measuring
from entmoot_ops.probes.cloudwatch import Window

# Request ids, numbers and durations vary between otherwise identical errors.
_VARIABLE = re.compile(r"\b(\d+(\.\d+)?(ms|s)?|[0-9a-f]{8}-[0-9a-f-]{27,})\b")


@dataclass(frozen=True)
class ErrorSample:
    group: str
    pattern: str
    events_read: int
    complete: bool  # False when the page bound stopped the read before the end of the window
    top: tuple[tuple[str, int], ...]


def _signature(message: str) -> str:
    # Log lines are "<timestamp> <LEVEL> <rest>"; the timestamp would make every line unique.
    parts = message.split(" ", 2)
    text = parts[2] if len(parts) == 3 else message
    return _VARIABLE.sub("#", text.strip())[:200]


def error_sample(clients: Clients, window: Window, pattern: str = "ERROR") -> ErrorSample:
    settings = clients.env.logs
    counts: Counter[str] = Counter()
    read = 0
    token = None
    with measuring("AWS CloudWatch Logs"):
        kwargs = dict(
            logGroupName=settings.group,
            startTime=int(window.start.timestamp() * 1000),
            endTime=int(window.end.timestamp() * 1000),
            filterPattern=pattern,
            limit=1000,
        )
        for _ in range(settings.max_pages):
            page = clients.aws("logs").filter_log_events(**kwargs)
            for event in page.get("events", []):
                counts[_signature(event["message"])] += 1
                read += 1
            token = page.get("nextToken")
            if not token:
                break
            kwargs["nextToken"] = token
    return ErrorSample(group=settings.group, pattern=pattern, events_read=read, complete=token is None,
                       top=tuple(counts.most_common(settings.top_errors)))
