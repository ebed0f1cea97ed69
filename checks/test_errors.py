"""Runbook Morning Checklist [6], High API Error Rate and Handoff: the error *rate* of the last hour."""

import pytest

from entmoot_ops import charts
from entmoot_ops.check import chart, check, evidence, expect
from entmoot_ops.probes import alb, cloudwatch, logs


def _error_chart(env, window: cloudwatch.Window, maximum: float) -> charts.Chart:
    periods = alb.error_periods(env.clients, window).periods
    rate = [(at, errors / requests * 100) for at, requests, errors in periods if requests]
    return charts.Chart("5XX error rate per period", "%", [
        charts.Line("5XX rate", rate), charts.Line("requests", [(at, requests) for at, requests, _ in periods], axis="right")],
        threshold=maximum * 100, window=(window.start, window.end), right_unit="requests")


def _judge(env, maximum: float) -> None:
    thresholds = env.thresholds
    window = cloudwatch.Window.last(thresholds.error_rate_window_minutes, thresholds.metric_period_seconds)
    stats = alb.request_stats(env.clients, window)
    evidence("ALB requests and 5XX", stats)
    # A log read costs seconds on AWS: read only for a check that does not pass (or on --evidence all).
    evidence("top error messages", lambda: logs.error_groups(env.clients, window))
    chart("ALB 5XX rate and requests per period", lambda: _error_chart(env, window, maximum))
    if stats.requests < thresholds.error_rate_min_requests:
        pytest.skip(f"too little traffic to judge: {stats.requests:.0f} requests < {thresholds.error_rate_min_requests} in {window.describe()}")
    expect(f"5XX error rate ({stats.errors:.0f} of {stats.requests:.0f} requests)", stats.error_rate, "<", maximum,
           unit="%", window=window.describe())


@pytest.mark.morning
@pytest.mark.alerts
@check(id="api.error-rate", title="API error rate below 1% over the last hour", section="high-api-error-rate",
       severity="critical", remediation="api.investigate-errors",
       depends=("traffic", "aws"))
def test_error_rate(env):
    _judge(env, env.thresholds.error_rate_max)


@pytest.mark.handoff
@check(id="api.error-rate-handoff", title="API error rate below 0.5% at handoff", section="handoff-procedures",
       severity="high", remediation="api.investigate-errors",
       depends=("traffic", "aws"))
def test_error_rate_at_handoff(env):
    _judge(env, env.thresholds.handoff_error_rate_max)
