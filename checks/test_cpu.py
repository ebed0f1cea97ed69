"""Runbook Alert: High CPU Utilization (>80%): the ECS service and the RDS instance.

The runbook's step 2 asks CloudWatch for CPUUtilization; on Fargate there are no container instances to
describe, so the service's own CloudWatch metric is the source (AWS/ECS, ClusterName and ServiceName).
"""

import pytest

from entmoot_ops import charts
from entmoot_ops.check import chart, check, evidence, expect
from entmoot_ops.probes import cloudwatch


@pytest.mark.alerts
@check(id="cpu.high", title="CPU below 80% (ECS service and RDS)", section="alert-high-cpu-utilization-80", severity="medium",
       remediation="cpu.identify-source",
       depends=("api", "primary", "aws"))
def test_cpu_below_alert(env):
    t, config = env.thresholds, env.config
    window = cloudwatch.Window.last(t.cpu_alert_window_minutes, t.metric_period_seconds)
    sources = {
        f"ECS service {config.ecs.service} CPU (average)": ("AWS/ECS", {"ClusterName": config.ecs.cluster, "ServiceName": config.ecs.service}),
        f"RDS {config.rds.instance} CPU (average)": ("AWS/RDS", {"DBInstanceIdentifier": config.rds.instance}),
    }
    measured = {label: cloudwatch.series(env.clients, namespace, "CPUUtilization", dims, "Average", window)
                for label, (namespace, dims) in sources.items()}
    evidence("CPUUtilization", measured)
    chart("CPUUtilization", lambda: charts.of_series("CPUUtilization per period", measured, unit="%", threshold=t.cpu_alert_percent,
                                                     window=window))
    for label, series in measured.items():
        # The window's average over its periods that hold data (equal periods: the mean of their averages).
        average = sum(value for _, value in series.points) / len(series.points) / 100 if series.points else None
        expect(label, average, "<", t.cpu_alert_percent / 100, unit="%", window=window.describe())
