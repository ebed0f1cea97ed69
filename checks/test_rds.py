"""Runbook Morning Checklist [5] and Alert: Disk Space Low (<10%)."""

import pytest

from entmoot_ops import charts
from entmoot_ops.check import chart, check, evidence, expect
from entmoot_ops.probes import cloudwatch, rds


@pytest.mark.morning
@check(id="rds.available", title="RDS instance available", section="morning-checklist-start-of-business-day",
       severity="critical", remediation="rds.investigate-status",
       depends=("aws",))
def test_rds_available(env):
    db = rds.instance(env.clients)
    evidence("rds:DescribeDBInstances", db)
    expect(f"status of {db.identifier}", db.status, "==", "available")


def _storage_chart(env, db: rds.DbInstance) -> charts.Chart:
    t = env.thresholds
    shown = cloudwatch.Window.last(max(t.metric_freshness_minutes, 15), t.metric_period_seconds)  # the judged periods, and before
    found = cloudwatch.series(env.clients, "AWS/RDS", "FreeStorageSpace", {"DBInstanceIdentifier": db.identifier}, "Minimum", shown)
    return charts.of_series(f"FreeStorageSpace of {db.identifier}, in % of {db.allocated_gib} GiB", {"free storage": found}, unit="%",
                            threshold=t.rds_free_storage_min_ratio * 100, scale=100 / (db.allocated_gib * rds.GIB),
                            window=cloudwatch.Window.last(t.metric_freshness_minutes, t.metric_period_seconds))


@pytest.mark.morning
@pytest.mark.alerts
@check(id="rds.free-storage", title="RDS free storage above 10% of allocated", section="alert-disk-space-low-10",
       severity="high", remediation="rds.increase-storage",
       depends=("primary", "aws"))
def test_rds_free_storage(env):
    db = rds.instance(env.clients)
    storage = rds.free_storage(env.clients, db)
    evidence("FreeStorageSpace vs AllocatedStorage", {"instance": db, "storage": storage})
    chart("FreeStorageSpace", lambda: _storage_chart(env, db))
    expect("free storage (FreeStorageSpace / AllocatedStorage)", storage.free_ratio, ">",
           env.thresholds.rds_free_storage_min_ratio, unit="%", gauge="free storage",
           window=f"period {storage.measured_at or 'none'} of {db.allocated_gib} GiB")


@pytest.mark.alerts
@check(id="rds.cpu-sustained", title="RDS CPU not consistently at 90%+ (Vertical Scaling trigger)",
       section="vertical-scaling-larger-instances", severity="high", remediation="rds.scale-up",
       depends=("primary", "aws"))
def test_rds_cpu_sustained(env):
    t = env.thresholds
    window = cloudwatch.Window.last(t.rds_cpu_window_minutes, t.metric_period_seconds)
    series = cloudwatch.series(env.clients, "AWS/RDS", "CPUUtilization", {"DBInstanceIdentifier": env.config.rds.instance},
                               "Average", window)
    evidence("RDS CPUUtilization", series)
    # "Consistently at 90%+": every period of the window at or above it, so the lowest period decides.
    lowest = min((value for _, value in series.points), default=None)
    expect(f"lowest CPU of any period of {env.config.rds.instance}", None if lowest is None else lowest / 100, "<",
           t.rds_cpu_sustained_max_percent / 100, unit="%", window=window.describe())
