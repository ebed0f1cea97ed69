"""Runbook API Response Time High and Horizontal Scaling: "Request latency p95 > 500ms"."""

import pytest

from entmoot_ops import charts
from entmoot_ops.check import chart, check, evidence, expect
from entmoot_ops.probes import alb, cloudwatch


@pytest.mark.alerts
@check(id="api.latency-p95", title="API p95 response time below 500 ms", section="api-response-time-high",
       severity="high", remediation="ecs.scale-out",
       depends=("traffic", "aws"))
def test_latency_p95(env):
    thresholds = env.thresholds
    window = cloudwatch.Window.last(thresholds.latency_window_minutes, thresholds.metric_period_seconds)
    dims = alb.api_dimensions(env.clients)
    p95 = cloudwatch.percentile(env.clients, "AWS/ApplicationELB", "TargetResponseTime", dims, 95, window)
    evidence("TargetResponseTime p95", {"window": window.describe(), "p95_seconds": p95})
    chart("TargetResponseTime p95 per period", lambda: charts.of_series(
        "TargetResponseTime p95 per period", {"p95": cloudwatch.percentile_series(env.clients, "AWS/ApplicationELB", "TargetResponseTime",
                                                                                  dims, 95, window)},
        unit="ms", threshold=thresholds.latency_p95_max_ms, window=window, scale=1000))
    expect("TargetResponseTime p95", None if p95 is None else p95 * 1000, "<", thresholds.latency_p95_max_ms, unit="ms",
           window=window.describe())
