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


def _window(env) -> Window:
    return Window.last(env.thresholds.latency_window_minutes, env.thresholds.metric_period_seconds)


@pytest.mark.incident
@check(id="incident.response-time", title="API Response Time High: p95 and p99, and the most likely cause", section=SECTION,
       severity="high", remediation="incident.response-time-cause",
       depends=("traffic", "aws"))
def test_response_time_triage(env):
    t, window = env.thresholds, _window(env)
    p95, p99 = triage.latency_ms(env.clients, window, 95), triage.latency_ms(env.clients, window, 99)
    evidence("TargetResponseTime p95 and p99 (ms)", {"window": window.describe(), "p95": p95, "p99": p99})
    verdict = ""
    if max(p95 or 0, p99 or 0) >= min(t.latency_p95_max_ms, t.latency_p99_max_ms or float("inf")):
        findings = triage.response_time_findings(env.clients, env.config, window)
        evidence("what points at a cause", findings)
        cause = triage.response_time_cause(findings, env.config)
        verdict = f"; most likely cause: {cause.describe()}" if cause else "; neither saturation nor a slow endpoint found"
    expect(f"TargetResponseTime p95{verdict}", p95, "<", t.latency_p95_max_ms, unit="ms", window=window.describe())
    if t.latency_p99_max_ms is not None:
        expect(f"TargetResponseTime p99{verdict}", p99, "<", t.latency_p99_max_ms, unit="ms", window=window.describe())


@pytest.mark.incident
@check(id="api.slow-endpoints", title="No endpoint keeps answering in a second or more", section=SECTION, severity="medium",
       remediation="api.profile-slow-endpoints",
       depends=("traffic",))
def test_slow_endpoints(env):
    t, window = env.thresholds, _window(env)
    slow = triage.slow_paths(env.clients, env.config, window)
    evidence("slow requests by path", slow)
    expect_none(f"paths with at least {t.slow_endpoint_min_requests} requests >= {t.slow_request_min_ms:g} ms in {window.describe()}",
                triage.slow_endpoints(slow, env.config),
                lambda p: f"{p.path} p95 {p.p95_ms:.0f} ms, max {p.max_ms:.0f} ms over {p.requests} requests")


@pytest.mark.incident
@check(id="api.requests-per-host", title="Requests per healthy target within a task's capacity", section=SECTION, severity="high",
       remediation="ecs.scale-out",
       depends=("traffic", "aws"))
def test_requests_per_host(env):
    t, window = env.thresholds, _window(env)
    load = triage.host_load(env.clients, window)
    evidence("requests per healthy host", load)
    if t.requests_per_host_max_rps is None:
        pytest.skip(f"peak {load.peak_rps_per_host or 0:.1f} requests/s per healthy host, not judged: set "
                    "thresholds.requests_per_host_max_rps from a load test of one task (entmoot-ops load)")
    expect("peak requests/s per healthy host", load.peak_rps_per_host, "<", t.requests_per_host_max_rps, window=window.describe())


@pytest.mark.incident
@check(id="ecs.utilisation", title="ECS service CPU below 70% and memory below 80%", section=SECTION, severity="high",
       remediation="ecs.scale-out",
       depends=("api", "aws"))
def test_service_utilisation(env):
    t, window = env.thresholds, _window(env)
    utilisation = triage.utilisation(env.clients, window)
    evidence("ECS service CPU and memory", utilisation)

    def ratio(percent: float | None) -> float | None:
        return None if percent is None else percent / 100
    expect(f"ECS service CPU (period {utilisation.cpu_period or 'none'})", ratio(utilisation.cpu_percent), "<",
           t.scale_out_cpu_percent / 100, unit="%", window=window.describe())
    expect(f"ECS service memory (period {utilisation.memory_period or 'none'})", ratio(utilisation.memory_percent), "<",
           t.scale_out_memory_percent / 100, unit="%", window=window.describe())
