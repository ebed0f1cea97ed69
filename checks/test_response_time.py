"""Runbook Troubleshooting > API Response Time High, as one incident bundle (-m incident -k response_time).

Corrected where the runbook's commands mislead: the ALB's p95 and p99 (percentiles, not Average and Maximum),
slow endpoints from the JSON logs (``duration_ms >= 1000`` per path, not ``[duration > 1000]``, which matches
nothing), requests per healthy target for the queue depth, and the service's own CloudWatch CPU and memory
(``describe-container-instances`` has nothing to say on Fargate).
"""

import pytest

from entmoot_ops import triage
from entmoot_ops.check import check, evidence, expect, expect_none
from entmoot_ops.probes.cloudwatch import Window

SECTION = "api-response-time-high"


def _findings(env) -> triage.ResponseTimeFindings:
    t = env.thresholds
    window = Window.last(t.latency_window_minutes, t.metric_period_seconds)
    return env.clients.remember(("response-time", window), lambda: triage.response_time_findings(env.clients, env.config, window))


@pytest.mark.incident
@check(id="incident.response-time", title="API Response Time High: p95 and p99, and the most likely cause", section=SECTION,
       severity="high", remediation="incident.response-time-cause")
def test_response_time_triage(env):
    t, findings = env.thresholds, _findings(env)
    evidence("TargetResponseTime p95 and p99 (ms)", {"window": findings.window, "p95": findings.p95_ms, "p99": findings.p99_ms})
    evidence("slow requests by path", findings.slow)
    evidence("requests per healthy host", findings.host_load)
    evidence("ECS service CPU and memory", findings.utilisation)
    verdict = ""
    if max(findings.p95_ms or 0, findings.p99_ms or 0) >= min(t.latency_p95_max_ms, t.latency_p99_max_ms or float("inf")):
        cause = triage.response_time_cause(findings, env.config)
        verdict = f"; most likely cause: {cause.describe()}" if cause else "; neither saturation nor a slow endpoint found"
    expect(f"TargetResponseTime p95{verdict}", findings.p95_ms, "<", t.latency_p95_max_ms, unit="ms", window=findings.window)
    if t.latency_p99_max_ms is not None:
        expect(f"TargetResponseTime p99{verdict}", findings.p99_ms, "<", t.latency_p99_max_ms, unit="ms", window=findings.window)


@pytest.mark.incident
@check(id="api.slow-endpoints", title="No endpoint keeps answering in a second or more", section=SECTION, severity="medium",
       remediation="api.profile-slow-endpoints")
def test_slow_endpoints(env):
    t, findings = env.thresholds, _findings(env)
    evidence("slow requests by path", findings.slow)
    expect_none(f"paths with at least {t.slow_endpoint_min_requests} requests >= {t.slow_request_min_ms:g} ms in {findings.window}",
                triage.slow_endpoints(findings, env.config),
                lambda p: f"{p.path} p95 {p.p95_ms:.0f} ms, max {p.max_ms:.0f} ms over {p.requests} requests")


@pytest.mark.incident
@check(id="api.requests-per-host", title="Requests per healthy target within a task's capacity", section=SECTION, severity="high",
       remediation="ecs.scale-out")
def test_requests_per_host(env):
    t, findings = env.thresholds, _findings(env)
    evidence("requests per healthy host", findings.host_load)
    if t.requests_per_host_max_rps is None:
        pytest.skip(f"peak {findings.host_load.peak_rps_per_host or 0:.1f} requests/s per healthy host, not judged: set "
                    "thresholds.requests_per_host_max_rps from a load test of one task (entmoot-ops load)")
    expect("peak requests/s per healthy host", findings.host_load.peak_rps_per_host, "<", t.requests_per_host_max_rps,
           window=findings.window)


@pytest.mark.incident
@check(id="ecs.utilisation", title="ECS service CPU below 70% and memory below 80%", section=SECTION, severity="high",
       remediation="ecs.scale-out")
def test_service_utilisation(env):
    t, findings = env.thresholds, _findings(env)
    evidence("ECS service CPU and memory", findings.utilisation)
    utilisation = findings.utilisation

    def ratio(percent: float | None) -> float | None:
        return None if percent is None else percent / 100
    expect("ECS service CPU", ratio(utilisation.cpu_percent), "<", t.scale_out_cpu_percent / 100, unit="%", window=findings.window)
    expect("ECS service memory", ratio(utilisation.memory_percent), "<", t.scale_out_memory_percent / 100, unit="%", window=findings.window)
