"""What every log backend answers, whatever holds the logs: error groups and slow paths over a window, and the
grouping of raw entries for a backend that reads them (:mod:`entmoot_ops.logsearch` chooses the backend).

The backends import this module, not the package that chooses among them: no backend imports what imports it.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from entmoot_ops.probes.cloudwatch import Window
from entmoot_ops.redaction import redact

NO_ERROR_TEXT = "(no error field)"
# The runbook's Common Causes, as the error text shows them. A pool timeout is a database error, not an external
# timeout: the database patterns are tried first.
ERROR_KINDS: dict[str, re.Pattern[str]] = {
    "database": re.compile(r"DatabaseError|OperationalError|QueuePool|psycopg|connection pool|too many connections|"
                           r"remaining connection slots", re.I),
    "timeout": re.compile(r"timeout|timed out|ReadTimeout|ConnectTimeout", re.I),
    "memory": re.compile(r"MemoryError|out of memory|OOM|Cannot allocate memory", re.I),
}


def kind_of(message: str) -> str:
    return next((kind for kind, pattern in ERROR_KINDS.items() if pattern.search(message)), "other")


@dataclass(frozen=True)
class ErrorGroup:
    message: str
    count: int
    first_seen: datetime | None
    last_seen: datetime | None
    sample_request_id: str | None

    @property
    def kind(self) -> str:
        return kind_of(self.message)


@dataclass(frozen=True)
class ErrorGroups:
    source: str
    window: str
    errors: int  # every ERROR line in the window
    groups: tuple[ErrorGroup, ...]  # most frequent first
    complete: bool  # False: a bounded read stopped before the end of the window, or more messages than groups
    api_calls: int

    def share(self, kind: str) -> float | None:
        """The share of errors of one kind (``ERROR_KINDS``); a lower bound when the groups are not complete."""
        if not self.errors:
            return None
        return sum(g.count for g in self.groups if g.kind == kind) / self.errors

    def describe(self, shown: int = 3) -> str:
        top = "; ".join(f"{g.count}x {g.message[:120]}" for g in self.groups[:shown])
        return f"{self.errors} errors in {len(self.groups)} groups" + (f": {top}" if top else "")


def merge_groups(groups: Iterable[ErrorGroup]) -> tuple[ErrorGroup, ...]:
    """Groups made on the server, by raw message, made again by redacted message, most frequent first."""
    merged: dict[str, ErrorGroup] = {}
    for group in groups:
        message = redact(group.message)
        seen = merged.get(message)
        if seen is None:
            merged[message] = dataclasses.replace(group, message=message)
            continue
        earliest = min((seen, group), key=lambda g: g.first_seen or datetime.max.replace(tzinfo=UTC))
        merged[message] = ErrorGroup(message, seen.count + group.count, earliest.first_seen,
                                     max((g.last_seen for g in (seen, group) if g.last_seen), default=None), earliest.sample_request_id)
    return tuple(sorted(merged.values(), key=lambda g: -g.count))


@dataclass(frozen=True)
class SlowPath:
    path: str
    requests: int
    p95_ms: float
    max_ms: float


@dataclass(frozen=True)
class SlowPaths:
    source: str
    window: str
    min_ms: float
    paths: tuple[SlowPath, ...]  # slowest p95 first
    complete: bool
    api_calls: int


class LogSearch(Protocol):
    def error_groups(self, window: Window, limit: int) -> ErrorGroups: ...

    def slow_paths(self, window: Window, min_ms: float, limit: int) -> SlowPaths: ...


# ------------------------------------------------------------- grouping of raw entries (bounded reads)
@dataclass(frozen=True)
class Entry:
    at: datetime
    fields: dict[str, Any]


def group_errors(entries: Iterable[Entry], *, limit: int, complete: bool, source: str, window: Window,
                 api_calls: int) -> ErrorGroups:
    """Grouped by the redacted message: the same error with another user's token in it is the same error."""
    found: dict[str, list[Entry]] = {}
    for entry in entries:
        found.setdefault(redact(str(entry.fields.get("error") or NO_ERROR_TEXT)), []).append(entry)
    groups = sorted((ErrorGroup(message=message, count=len(members), first_seen=min(e.at for e in members),
                                last_seen=max(e.at for e in members),
                                sample_request_id=min(members, key=lambda e: e.at).fields.get("request_id"))
                     for message, members in found.items()), key=lambda g: -g.count)
    return ErrorGroups(source=source, window=window.describe(), errors=sum(g.count for g in groups),
                       groups=tuple(groups[:limit]), complete=complete and len(groups) <= limit, api_calls=api_calls)


def percentile(values: list[float], percent: float) -> float:
    """Nearest rank, as CloudWatch and Logs Insights compute it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]


def group_slow(entries: Iterable[Entry], *, min_ms: float, limit: int, complete: bool, source: str, window: Window,
               api_calls: int) -> SlowPaths:
    durations: dict[str, list[float]] = {}
    for entry in entries:
        value = entry.fields.get("duration_ms")
        if isinstance(value, (int, float)) and value >= min_ms:
            durations.setdefault(redact(str(entry.fields.get("path"))), []).append(float(value))
    paths = sorted((SlowPath(path, len(v), percentile(v, 95), max(v)) for path, v in durations.items()), key=lambda p: -p.p95_ms)
    return SlowPaths(source=source, window=window.describe(), min_ms=min_ms, paths=tuple(paths[:limit]),
                     complete=complete, api_calls=api_calls)
