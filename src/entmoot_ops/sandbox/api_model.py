"""What the sandbox's API is made of besides its routes: its capacity (ECS tasks serving in arrival order), the faults
it can be told to show, and the batch of telemetry it publishes as the ALB and its access logs would."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, UTC




TASK_RATE = 50  # requests per second one ECS task serves; beyond that, requests queue in arrival order
PROJECT_TTL = 300  # runbook Caching Strategy: API responses 300 s
CONSTRAINTS_TTL = 86400  # constraint data (boundaries): 24 h
HEALTH_TIMEOUT = 0.5  # seconds per dependency in /health
DRAIN_TIMEOUT = 8  # seconds a drain waits for requests in flight: a black-holed dependency's timeouts end sooner
POOL_ERROR = "DatabaseError: QueuePool limit of size 10 overflow 0 reached, connection timed out, timeout 5.00 (injected)"


class InjectedError(Exception):
    """A failure the fault asked for; its message is logged as the application would log the real one."""


@dataclass
class Faults:
    error_rate: float = 0.0
    latency_ms: float = 0.0
    degraded: bool = False
    degraded_detail: str = ""  # what the failing component says in /health while degraded, as a real one would
    worker_paused: bool = False
    auth_disabled: bool = False  # a release that shipped with authentication switched off
    storage_fallback: bool = False  # started while Redis was away and fell back to in-memory storage, "healthy"
    task_rate: float = 0.0  # requests per second per task, when not TASK_RATE (a benchmark lifts the ceiling)
    error_message: str = POOL_ERROR  # what a failing request logs: the cause an incident bundle must find
    slow_paths: dict = field(default_factory=dict)  # {path prefix: extra milliseconds}: slow endpoints in the logs
    # A bad release: {version: {"error_rate": .., "latency_ms": ..}}, in force while that version runs.
    versions: dict = field(default_factory=dict)
    clock_skew_seconds: float = 0.0  # the Date header of every answer is this far from the true time

    def effective(self, version: str) -> tuple[float, float]:
        bad = self.versions.get(version, {})
        return max(self.error_rate, bad.get("error_rate", 0.0)), max(self.latency_ms, bad.get("latency_ms", 0.0))

    def path_latency_ms(self, path: str) -> float:
        return max((ms for prefix, ms in self.slow_paths.items() if path.startswith(prefix)), default=0.0)


class Fleet:
    """The tasks behind the load balancer: ``tasks x TASK_RATE`` requests a second, served in arrival order. A
    request waits for its turn; under more load than that, the queue (and the latency) grows."""

    def __init__(self, tasks: int):
        self.tasks = tasks
        self.rate = TASK_RATE
        self._next_turn = 0.0  # the fleet is busy until then
        self._busy_since = 0.0  # when its current busy spell began
        self._busy = 0.0  # seconds the fleet was busy since the last utilisation reading
        self._counted_to = self._read_at = time.monotonic()

    def _count(self, now: float) -> None:
        """Add the busy time since the last count: the fleet is busy from the start of its spell to its last turn."""
        if self._next_turn > self._counted_to:
            self._busy += max(0.0, min(now, self._next_turn) - max(self._counted_to, self._busy_since))
        self._counted_to = now

    async def turn(self) -> float:
        """Wait for this request's turn; return the wait the model gives it, which is what it counts as having
        waited: on a busy machine the sleep itself overruns, and that is the machine's delay, not the service's."""
        now = time.monotonic()
        self._count(now)
        if now >= self._next_turn:  # idle until this request: a new busy spell
            self._busy_since = now
        start = max(now, self._next_turn)
        self._next_turn = start + 1 / (self.tasks * self.rate)
        if start > now:
            await asyncio.sleep(start - now)
        return start - now

    def utilisation(self) -> float:
        """Percent of the time since the last reading that the fleet was busy serving: ECS's CPUUtilization of the
        service. Busy time, not requests counted on arrival: three requests arriving together then none for a second
        keep the fleet busy for that second, they do not make it 100% busy, then idle."""
        now = time.monotonic()
        self._count(now)
        used = min(1.0, self._busy / max(now - self._read_at, 1e-3))
        self._busy, self._read_at = 0.0, now
        return 100 * used


@dataclass
class Telemetry:
    lines: list[dict] = field(default_factory=list)
    requests: int = 0
    by_class: dict[str, int] = field(default_factory=lambda: {"2XX": 0, "4XX": 0, "5XX": 0})
    durations: dict[float, int] = field(default_factory=dict)
    # Datapoints carry the time of the batch's first request, not of the flush: a request served before a
    # deployment started must not be counted after it.
    started: datetime | None = None

    def record(self, method: str, path: str, status: int, seconds: float, error: str | None) -> None:
        self.started = self.started or datetime.now(UTC)
        self.requests += 1
        self.by_class[f"{status // 100}XX"] = self.by_class.get(f"{status // 100}XX", 0) + 1
        rounded = round(seconds, 3)
        self.durations[rounded] = self.durations.get(rounded, 0) + 1
        # One JSON object per request, as a structured logger writes it: CloudWatch's JSON filter patterns and
        # Logs Insights read its fields by name.
        line = {"time": datetime.now(UTC).isoformat(timespec="milliseconds"), "level": "ERROR" if status >= 500 else "INFO",
                "request_id": str(uuid.uuid4()), "method": method, "path": path, "status": status,
                "duration_ms": round(seconds * 1000, 1)}
        if error:
            line["error"] = error
        self.lines.append({"timestamp": int(time.time() * 1000), "message": json.dumps(line)})

    def drain(self) -> Telemetry:
        drained = Telemetry(self.lines, self.requests, self.by_class, self.durations, self.started)
        self.lines, self.requests, self.by_class, self.durations = [], 0, {"2XX": 0, "4XX": 0, "5XX": 0}, {}
        self.started = None
        return drained
