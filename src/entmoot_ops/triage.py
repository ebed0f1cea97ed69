"""Incident triage: from the readings of a Troubleshooting investigation (High API Error Rate, API Response Time
High) to its most likely cause.

The runbook's "Common Causes & Solutions" table, made a decision: each cause is named only with the evidence
that points at it, and the order is from the most specific evidence (a deployment started just before the
errors did) to the least (the kind of error text).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from entmoot_ops.clients import Clients
from entmoot_ops.config import Environment
from entmoot_ops.check import Unavailable, best_effort
from entmoot_ops.logsearch import ErrorGroups, SlowPath, SlowPaths
from entmoot_ops.probes import alb, cloudwatch, ecs, logs, postgres, redis
from entmoot_ops.probes.cloudwatch import Window


@dataclass(frozen=True)
class Cause:
    name: str  # the runbook's "Cause" column
    solution: str  # its "Solution" column
    remediation: str
    evidence: str

    def describe(self) -> str:
        return f"{self.name} ({self.evidence}) -> {self.solution} (remediation {self.remediation})"


CAUSES = {  # High API Error Rate: the runbook's Common Causes table
    "pool": ("Database connection pool exhausted", "increase DATABASE_POOL_SIZE or restart the API", "postgres.resize-pool"),
    "deployment": ("Recent bad deployment", "roll back to the previous version", "ecs.rollback"),
    "slow-queries": ("Slow database queries", "analyze slow queries, add indices", "postgres.cancel-long-queries"),
    "external-timeouts": ("External API timeouts", "check the external API's status, increase the timeout",
                          "api.check-external-dependencies"),
    "memory": ("Memory leak/OOM", "restart the containers, profile the memory", "ecs.restart-leaking-tasks"),
}


def _cause(key: str, evidence: str) -> Cause:
    name, solution, remediation = CAUSES[key]
    return Cause(name, solution, remediation, evidence)


@dataclass(frozen=True)
class ErrorRateFindings:
    window: str
    period_seconds: int
    requests: float
    errors: float
    error_rate: float | None
    periods: alb.ErrorPeriods
    deployment: ecs.Deployment | None  # the PRIMARY deployment
    logs: ErrorGroups | Unavailable  # read only when the rate is breached: it names the cause, never the verdict
    connections: postgres.ConnectionUsage | None
    long_queries: tuple[postgres.Session, ...]
    redis: redis.RedisInfo | None
    utilisation: ecs.Utilisation | None
    unavailable: tuple[str, ...]  # parts that could not be measured, with why
    investigated: bool = True  # False: the rate is within its threshold, so nothing else was read


def _optional(measure, unavailable: list[str], what: str):  # noqa: ANN001, ANN202 - any probe
    """A dependency that is down is itself evidence; it must not stop the rest of the investigation."""
    found = best_effort(what, measure)
    if isinstance(found, Unavailable):
        unavailable.append(f"{what}: {found.reason}")
        return None
    return found


def error_rate_findings(clients: Clients, env: Environment, window: Window) -> ErrorRateFindings:
    """Everything the runbook's investigation reads, over one window. The error rate is the measurement; the rest
    is read only when the rate is breached, each part best effort."""
    t = env.thresholds
    unavailable: list[str] = []
    periods = alb.error_periods(clients, window)
    breached = bool(periods.requests) and periods.errors / periods.requests >= t.error_rate_max
    if not breached:
        return ErrorRateFindings(
            window=window.describe(), period_seconds=window.period_seconds, requests=periods.requests, errors=periods.errors,
            error_rate=periods.errors / periods.requests if periods.requests else None, periods=periods, deployment=None,
            logs=Unavailable("not read: the error rate is within its threshold"), connections=None, long_queries=(),
            redis=None, utilisation=None, unavailable=(), investigated=False)
    state = _optional(lambda: ecs.service_state(clients), unavailable, "ECS service")
    primary = state.primary if state else ()

    def database() -> tuple[postgres.ConnectionUsage, tuple[postgres.Session, ...]]:
        with clients.postgres(env.postgres.primary_dsn, name="primary") as primary_db:
            return postgres.connection_usage(primary_db), postgres.long_running_queries(primary_db, t.long_query_max_seconds)

    connections, long_queries = _optional(database, unavailable, "PostgreSQL") or (None, ())
    return ErrorRateFindings(
        window=window.describe(), period_seconds=window.period_seconds, requests=periods.requests, errors=periods.errors,
        error_rate=periods.errors / periods.requests if periods.requests else None,
        periods=periods, deployment=primary[0] if primary else None,
        logs=best_effort("error logs", lambda: logs.error_groups(clients, window)), connections=connections, long_queries=long_queries,
        redis=_optional(lambda: redis.info(clients), unavailable, "Redis"),
        utilisation=_optional(lambda: ecs.utilisation(clients, window), unavailable, "ECS utilisation"),
        unavailable=tuple(unavailable))


def most_likely_cause(f: ErrorRateFindings, env: Environment) -> Cause | None:
    t = env.thresholds
    deployment, onset = f.deployment, f.periods.onset(t.error_rate_max)
    if onset and deployment and deployment.created_at:
        # The onset is the start of a CloudWatch period: a deployment inside that period may have caused it. One
        # that served healthy periods before the errors began did not.
        after = onset - deployment.created_at
        if (timedelta(seconds=-f.period_seconds) <= after <= timedelta(minutes=t.deploy_correlation_minutes)
                and not f.periods.healthy_between(deployment.created_at, onset, t.error_rate_max)):
            revision = deployment.task_definition.rsplit("/", 1)[-1]
            return _cause("deployment", f"errors began {max(after.total_seconds(), 0) / 60:.1f} min after PRIMARY deployment {revision} started "
                                        f"at {deployment.created_at:%H:%M:%SZ}, within {t.deploy_correlation_minutes:g} min")
    groups = f.logs if isinstance(f.logs, ErrorGroups) else None
    database, timeouts, memory = ((groups.share(kind) if groups else None) or 0.0 for kind in ("database", "timeout", "memory"))
    pool_text = any("pool" in g.message.lower() or "connection slots" in g.message for g in (groups.groups if groups else ()) if g.kind == "database")
    busy = f.connections is not None and f.connections.ratio >= t.connections_max_ratio
    if database >= t.error_cause_min_share and (pool_text or busy):
        held = f"; connections {f.connections.client_connections} of {f.connections.usable} usable" if f.connections else ""
        return _cause("pool", f"{database:.0%} of errors are pool/database errors{held}")
    if f.long_queries:
        oldest = f.long_queries[0]
        return _cause("slow-queries", f"{len(f.long_queries)} statements running longer than {t.long_query_max_seconds:g} s, "
                                      f"the oldest {oldest.seconds:.0f} s (pid {oldest.pid}, role {oldest.role})")
    if timeouts >= t.error_cause_min_share:
        return _cause("external-timeouts", f"{timeouts:.0%} of errors are timeouts")
    memory_percent = f.utilisation.memory_percent if f.utilisation else None
    if memory >= t.error_cause_min_share or (memory_percent is not None and memory_percent >= t.memory_max_percent):
        shown = f"ECS MemoryUtilization {memory_percent:.0f}%" if memory_percent is not None else "no memory metric"
        return _cause("memory", f"{memory:.0%} of errors are out-of-memory errors; {shown}")
    return None


# ------------------------------------------------------------------------------------ API Response Time High
CAUSES |= {  # API Response Time High: its Solutions, by the evidence that calls for each
    "saturated": ("Tasks saturated", "scale horizontally (runbook solution 1)", "ecs.scale-out"),
    "slow-endpoints": ("Slow endpoints", "identify the slow endpoints, profile them, optimise their queries (solution 2)",
                       "api.profile-slow-endpoints"),
}


@dataclass(frozen=True)
class ResponseTimeFindings:
    """What points at a cause of slow responses; each part read best effort (None with why in ``unavailable``)."""

    slow: SlowPaths | None
    host_load: alb.HostLoad | None
    utilisation: ecs.Utilisation | None
    unavailable: tuple[str, ...]


def latency_ms(clients: Clients, window: Window, percent: float) -> float | None:
    """The ALB's TargetResponseTime percentile over a window, in ms."""
    dims = alb.api_dimensions(clients)
    seconds = clients.remember(("target-response-time", window, percent),
                               lambda: cloudwatch.percentile(clients, "AWS/ApplicationELB", "TargetResponseTime", dims, percent, window))
    return None if seconds is None else seconds * 1000


def slow_paths(clients: Clients, env: Environment, window: Window) -> SlowPaths:
    return logs.slow_paths(clients, window, env.thresholds.slow_request_min_ms)


def host_load(clients: Clients, window: Window) -> alb.HostLoad:
    return clients.remember(("host-load", window), lambda: alb.host_load(clients, window))


def utilisation(clients: Clients, window: Window) -> ecs.Utilisation:
    return clients.remember(("ecs-utilisation", window), lambda: ecs.utilisation(clients, window))


def response_time_findings(clients: Clients, env: Environment, window: Window) -> ResponseTimeFindings:
    unavailable: list[str] = []
    return ResponseTimeFindings(slow=_optional(lambda: slow_paths(clients, env, window), unavailable, "slow requests in the logs"),
                                host_load=_optional(lambda: host_load(clients, window), unavailable, "requests per healthy host"),
                                utilisation=_optional(lambda: utilisation(clients, window), unavailable, "ECS utilisation"),
                                unavailable=tuple(unavailable))


def slow_endpoints(slow: SlowPaths | None, env: Environment) -> tuple[SlowPath, ...]:
    return tuple(p for p in (slow.paths if slow else ()) if p.requests >= env.thresholds.slow_endpoint_min_requests)


def response_time_cause(f: ResponseTimeFindings, env: Environment) -> Cause | None:
    """Saturation first: when every task is busy, every endpoint is slow, and the slow paths say nothing."""
    t = env.thresholds
    cpu = f.utilisation.cpu_percent if f.utilisation else None
    memory = f.utilisation.memory_percent if f.utilisation else None
    per_host = f.host_load.peak_rps_per_host if f.host_load else None
    busy = [text for hit, text in (
        (cpu is not None and cpu >= t.scale_out_cpu_percent, f"ECS CPU {cpu or 0:.0f}% >= {t.scale_out_cpu_percent:g}%"),
        (memory is not None and memory >= t.scale_out_memory_percent, f"ECS memory {memory or 0:.0f}% >= {t.scale_out_memory_percent:g}%"),
        (per_host is not None and t.requests_per_host_max_rps is not None and per_host >= t.requests_per_host_max_rps,
         f"{per_host or 0:.1f} requests/s per healthy host >= {t.requests_per_host_max_rps or 0:g}")) if hit]
    if busy:
        return _cause("saturated", "; ".join(busy))
    slow = slow_endpoints(f.slow, env)
    if slow and f.slow:
        return _cause("slow-endpoints", "; ".join(f"{p.path} p95 {p.p95_ms:.0f} ms over {p.requests} requests >= {f.slow.min_ms:g} ms"
                                                  for p in slow[:3]))
    return None
