"""Runbook Evening Checklist: backups, unusual activity, the day's traffic. (Deployments: test_ecs.py.)"""

from datetime import datetime, timedelta, UTC

import pytest

from entmoot_ops.activity import unusual
from entmoot_ops.check import check, evidence, expect
from entmoot_ops.probes import alb, cloudtrail, cloudwatch, rds

SECTION = "evening-checklist-end-of-business-day"


@pytest.mark.evening
@check(id="backup.latest-snapshot", title="Newest automated snapshot available and younger than 24 h", section=SECTION,
       severity="critical", remediation="backup.investigate",
       depends=("aws",))
def test_latest_snapshot(env):
    snapshots = rds.automated_snapshots(env.clients)
    evidence("rds:DescribeDBSnapshots (automated, sorted by time)", snapshots)
    finished = [s for s in snapshots if s.created is not None]
    expect("automated snapshots", len(finished), ">", 0)
    newest = finished[-1]
    expect(f"status of {newest.identifier}", newest.status, "==", "available")
    age = (datetime.now(UTC) - newest.created).total_seconds() / 3600
    expect(f"age of newest automated snapshot {newest.identifier}", age, "<", env.thresholds.backup_max_age_hours, unit="h")


@pytest.mark.evening
@check(id="backup.point-in-time", title="Point-in-time recovery is current", section=SECTION, severity="high",
       remediation="backup.investigate",
       depends=("aws",))
def test_point_in_time_recovery(env):
    db = rds.instance(env.clients)
    evidence("LatestRestorableTime", {"instance": db.identifier, "latest_restorable_time": db.latest_restorable_time,
                                      "backup_retention_days": db.backup_retention_days})
    expect("backup retention", db.backup_retention_days, ">", 0, unit="days")
    lag = None if db.latest_restorable_time is None else (
        datetime.now(UTC) - db.latest_restorable_time).total_seconds() / 60
    expect("point-in-time recovery lag (now - LatestRestorableTime)", lag, "<", env.thresholds.pitr_max_lag_minutes, unit="min")


@pytest.mark.evening
@check(id="security.unusual-activity", title="No unusual activity in CloudTrail", section=SECTION, severity="high",
       remediation="security.review-activity",
       depends=("aws",))
def test_no_unusual_activity(env):
    settings = env.config.cloudtrail
    window = cloudwatch.Window.last(settings.window_hours * 60, 60)
    scan = cloudtrail.events(env.clients, window)
    findings = unusual(scan.events, settings)
    evidence("unusual CloudTrail events", {"window": scan.window, "events_read": len(scan.events),
                                           "complete": scan.complete, "findings": [str(f) for f in findings]})
    listed = "; ".join(str(f) for f in findings[:10]) + (f"; +{len(findings) - 10} more" if len(findings) > 10 else "")
    expect("unusual events" + (f": {listed}" if findings else ""), len(findings), "==", 0, window=scan.window)
    expect(f"CloudTrail read complete (bound cloudtrail.max_events = {settings.max_events})", scan.complete, "==", True)


@pytest.mark.evening
@check(id="traffic.daily-vs-last-week", title="Daily API requests in line with the same day last week", section=SECTION,
       severity="medium", remediation="traffic.investigate-change",
       depends=("traffic", "aws"))
def test_daily_traffic(env):
    today = cloudwatch.Window.last(24 * 60, 3600)
    last_week = cloudwatch.Window(today.start - timedelta(days=7), today.end - timedelta(days=7), 3600)
    current, baseline = alb.request_stats(env.clients, today), alb.request_stats(env.clients, last_week)
    evidence("ALB requests: last 24 h and the same 24 h a week earlier", {"today": current, "last_week": baseline})
    if not baseline.requests:
        pytest.skip(f"no baseline: 0 requests in {last_week.describe()}")
    bound = env.thresholds.traffic_change_max_ratio
    ratio = current.requests / baseline.requests
    label = f"requests last 24 h vs a week earlier ({current.requests:.0f} vs {baseline.requests:.0f})"
    expect(label, ratio, ">", 1 / bound, unit="x")
    expect(label, ratio, "<", bound, unit="x")
