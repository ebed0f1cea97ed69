"""Runbook Scaling Procedures (Horizontal Scaling) and the Monitoring thresholds, under load.

``pytest checks/ -m load`` runs locust once per environment (a subprocess: see entmoot_ops.load; the ``load_run``
fixture is the plugin's, entmoot_ops.pytest_plugin.load_and_chaos, beside the refusal of a load run not allowed), then judges
what locust measured and what CloudWatch saw while it ran. ``--load-shape`` picks baseline, ramp, spike or soak.
"""

from datetime import datetime, UTC

import pytest

from entmoot_ops import load
from entmoot_ops.check import check, evidence, expect, record
from entmoot_ops.probes import alb, cloudwatch

SECTION = "horizontal-scaling-add-more-instances"


def _window(run: load.LoadResult) -> str:
    stop = f"; stopped early: {run.stopped_early}" if run.stopped_early else ""
    return f"{run.shape}, up to {run.users} users, {run.seconds:.0f} s of {run.planned_seconds:g} s{stop}"


@pytest.mark.load
@check(id="load.latency-p95", title="p95 response time under load below 500 ms", section=SECTION, severity="high",
       remediation="ecs.scale-out",
       depends=("api", "traffic", "aws"))
def test_latency_under_load(env, load_run):
    evidence("locust run", load_run)
    record("load_p95_ms", load_run.p95_ms, shape=load_run.shape)
    record("load_requests_per_second", load_run.requests / load_run.seconds if load_run.seconds else 0.0, shape=load_run.shape)
    expect(f"locust p95 of {load_run.requests} requests", load_run.p95_ms, "<", env.thresholds.latency_p95_max_ms, unit="ms",
           window=_window(load_run))


@pytest.mark.load
@check(id="load.failure-ratio", title="Failed requests under load below 1%", section=SECTION, severity="high",
       remediation="api.investigate-errors",
       depends=("api", "traffic", "aws"))
def test_failures_under_load(env, load_run):
    evidence("locust requests by name", load_run.endpoints)
    evidence("locust failures by kind", load_run.errors)
    record("load_failure_ratio", load_run.failure_ratio, shape=load_run.shape)
    expect(f"failure ratio ({load_run.failures} of {load_run.requests} requests; most: {load_run.describe_errors()})", load_run.failure_ratio, "<",
           env.thresholds.error_rate_max, unit="%", window=_window(load_run))


@pytest.mark.load
@check(id="load.scaling-triggers", title="No scale-out trigger fires under load (CPU, memory, p95, 5XX)", section=SECTION,
       severity="high", remediation="ecs.scale-out",
       depends=("api", "traffic", "aws"))
def test_scaling_triggers_under_load(env, load_run):
    t = env.thresholds
    window = cloudwatch.Window.during(datetime.fromtimestamp(load_run.started, UTC), datetime.fromtimestamp(load_run.ended, UTC),
                                      t.metric_period_seconds)
    window.wait_until_ended()
    service = {"ClusterName": env.config.ecs.cluster, "ServiceName": env.config.ecs.service}
    cpu, memory = (cloudwatch.series(env.clients, "AWS/ECS", metric, service, "Maximum", window)
                   for metric in ("CPUUtilization", "MemoryUtilization"))
    p95 = cloudwatch.percentile(env.clients, "AWS/ApplicationELB", "TargetResponseTime",
                                alb.api_dimensions(env.clients), 95, window)
    requests = alb.request_stats(env.clients, window)
    evidence("CloudWatch during the load", {"window": window.describe(), "cpu": cpu, "memory": memory,
                                            "p95_seconds": p95, "requests": requests})
    peak = lambda series: max((value for _, value in series.points), default=None)  # noqa: E731
    ratio = lambda percent: None if percent is None else percent / 100  # noqa: E731 - expect's "%" formats ratios
    expect("ECS service CPU (peak)", ratio(peak(cpu)), "<", t.scale_out_cpu_percent / 100, unit="%", window=window.describe())
    expect("ECS service memory (peak)", ratio(peak(memory)), "<", t.scale_out_memory_percent / 100, unit="%",
           window=window.describe())
    expect("ALB TargetResponseTime p95", None if p95 is None else p95 * 1000, "<", t.latency_p95_max_ms, unit="ms",
           window=window.describe())
    expect(f"5XX error rate ({requests.errors:.0f} of {requests.requests:.0f} requests)", requests.error_rate, "<",
           t.scale_out_error_rate, unit="%", window=window.describe())
