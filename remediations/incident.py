"""Incident remediations that follow a diagnosis: the plan names the most likely cause and shows that cause's own
remediation; acting runs it only where that remediation can act (a rollback), and a person does the rest."""

from __future__ import annotations

from collections.abc import Callable

from entmoot_ops import triage
from entmoot_ops.errors import OpsError
from entmoot_ops.probes.cloudwatch import Window
from entmoot_ops.remediation import REGISTRY, Change, RemediationContext, procedure, remediation


Diagnose = Callable[[RemediationContext], triage.Cause]


def _error_cause(ctx: RemediationContext) -> triage.Cause:
    t = ctx.env.thresholds
    findings = triage.error_rate_findings(ctx.readonly, ctx.env, Window.last(t.incident_window_minutes, t.metric_period_seconds))
    cause = triage.most_likely_cause(findings, ctx.env)
    if cause is None:
        raise OpsError(f"no Common Cause matched ({findings.logs.describe()})",
                       fix="follow api.investigate-errors: read the grouped errors and the deployments by hand")
    return cause


def _response_time_cause(ctx: RemediationContext) -> triage.Cause:
    t = ctx.env.thresholds
    findings = triage.response_time_findings(ctx.readonly, ctx.env, Window.last(t.latency_window_minutes, t.metric_period_seconds))
    cause = triage.response_time_cause(findings, ctx.env)
    if cause is None:
        raise OpsError("neither saturated tasks nor a slow endpoint found",
                       fix="runbook solution 3: raise the TTL of expensive reads and watch the cache hit rate")
    return cause


def _following(diagnose: Diagnose, *, id: str, title: str, section: str) -> None:
    """A remediation that diagnoses, then plans (and, where it can act, acts) as the cause's own remediation."""
    def plan(ctx: RemediationContext) -> list[str]:
        cause = diagnose(ctx)
        return [f"most likely cause: {cause.name} ({cause.evidence})", f"runbook solution: {cause.solution}",
                f"remediation {cause.remediation}:", *(f"  {step}" for step in REGISTRY[cause.remediation].plan(ctx))]

    def act(ctx: RemediationContext) -> list[Change]:
        cause = diagnose(ctx)
        chosen = REGISTRY[cause.remediation]
        if chosen.act is None:
            raise OpsError(f"{cause.name}: remediation {chosen.id} is carried out by a person", fix="follow the plan above")
        return chosen.act(ctx)

    remediation(id, title=title, section=section, plan=plan, act=act)


_following(_error_cause, id="incident.error-cause", title="High API Error Rate: the remediation of the most likely cause",
           section="high-api-error-rate")
_following(_response_time_cause, id="incident.response-time-cause", section="api-response-time-high",
           title="API Response Time High: the remediation of the most likely cause")
procedure("api.profile-slow-endpoints", title="Slow endpoints: profile them and fix their queries",
          section="api-response-time-high", steps=[
    "take the slowest paths of the attached 'slow requests by path' evidence (p95 per path, from the logs)",
    "profile one request of each (py-spy dump / a tracing span): time in the database, in Redis, in the code",
    "database time: run the High Database CPU bundle (-m incident -k 'top_statements or large_tables'), add the index it suggests",
    "cacheable reads: cache them with the runbook's TTLs and watch the hit rate (redis.hit-rate)",
])
procedure("api.check-external-dependencies", title="External API timeouts: check the dependency, then the timeout",
          section="high-api-error-rate", steps=[
    "find the external call in the grouped errors' messages (host, endpoint) and its provider's status page",
    "an outage: degrade gracefully (serve cached data, fail fast) rather than hold the request until it times out",
    "a slower dependency: raise the client timeout only within the ALB's idle timeout, and add a circuit breaker",
])
procedure("ecs.restart-leaking-tasks", title="Memory leak/OOM: replace the tasks, then profile",
          section="high-api-error-rate", steps=[
    "aws ecs update-service --cluster <cluster> --service entmoot-api --force-new-deployment (tasks replaced one by one)",
    "aws ecs list-tasks --desired-status STOPPED; describe-tasks: stoppedReason 'OutOfMemoryError' confirms the OOM kill",
    "profile the memory of the version that leaks (tracemalloc, memray) before raising the task's memory",
])
