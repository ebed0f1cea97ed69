"""The evening checklist: each check fails on its fault; the runbook's snapshot query picks the oldest."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, UTC

import boto3
import pytest

from entmoot_ops.sandbox import aws as sandbox_aws


def test_runbook_snapshot_zero_is_not_the_newest(sandbox):
    """Reality wins: DescribeDBSnapshots has no order, and `DBSnapshots[0]` here is three days old."""
    rds = boto3.client("rds", endpoint_url=sandbox.env["ENTMOOT_SANDBOX_AWS_ENDPOINT_URL"], region_name="us-east-1",
                       **sandbox_aws.CREDENTIALS)
    snapshots = rds.describe_db_snapshots(DBInstanceIdentifier=sandbox_aws.DB_INSTANCE)["DBSnapshots"]
    assert snapshots[0]["SnapshotCreateTime"] == min(s["SnapshotCreateTime"] for s in snapshots)
    assert snapshots[0]["SnapshotCreateTime"] != max(s["SnapshotCreateTime"] for s in snapshots)


def test_newest_snapshot_is_judged_not_the_first(run_checks):
    run = run_checks("-m", "evening", "-k", "latest_snapshot")
    assert run.outcome("backup.latest-snapshot") == "pass"
    assert re.search(r"; 2\.\d+ h$", run.result("backup.latest-snapshot").measured)


CASES = [
    ("backup.latest-snapshot", "stale_backups", {"hours": 30},
     r"age of newest automated snapshot .*: measured 3\d\.\d+ h, threshold < 24 h"),
    ("backup.point-in-time", "pitr_lag", {"minutes": 45}, r"point-in-time recovery lag .*: measured 45(\.\d+)? min, threshold < 15 min"),
    ("traffic.daily-vs-last-week", "traffic_drop", {"factor": 0.2}, r"measured 0\.\d+ x, threshold > 0\.5 x"),
    ("security.unusual-activity", "cloudtrail_event", {"kind": "root_usage"},
     r"root-account-usage: .* GetAccountSummary by arn:aws:iam::123456789012:root"),
    ("security.unusual-activity", "cloudtrail_event", {"kind": "console_no_mfa"}, r"console-login-without-mfa: .* ConsoleLogin by .*user/mallory"),
    ("security.unusual-activity", "cloudtrail_event", {"kind": "iam_change"}, r"iam-change: .* CreateAccessKey"),
    ("security.unusual-activity", "cloudtrail_event", {"kind": "sg_open"}, r"security-group-open-to-world: .* AuthorizeSecurityGroupIngress"),
    ("security.unusual-activity", "cloudtrail_event", {"kind": "kms_disable"}, r"kms-key-disabled: .* ScheduleKeyDeletion"),
    ("security.unusual-activity", "cloudtrail_event", {"kind": "db_delete"}, r"db-deletion: .* DeleteDBSnapshot"),
    ("security.unusual-activity", "cloudtrail_event", {"kind": "trail_stopped"}, r"trail-logging-stopped: .* StopLogging"),
    ("security.unusual-activity", "cloudtrail_event", {"kind": "access_denied_burst"}, r"access-denied-burst: 30 denied calls by .*user/mallory"),
]


@pytest.mark.parametrize("check_id,fault,params,message", CASES, ids=[f"{c[0]}<-{c[2].get('kind', c[1])}" for c in CASES])
def test_each_evening_check_fails_on_its_fault(check_id, fault, params, message, sandbox, run_checks):
    with sandbox.fault(fault, **params):
        run = run_checks("-m", "evening")
    failed = run.result(check_id)
    assert failed.outcome == "fail", run.output[-3000:]
    assert re.search(message, failed.message), failed.message
    assert failed.remediation in failed.message
    assert set(run.by_outcome()) == {"pass", "fail"} and run.by_outcome()["fail"] == {check_id}


def test_changes_by_the_allowed_pipeline_role_are_expected(sandbox, run_checks):
    with sandbox.fault("cloudtrail_event", kind="iam_change", principal=sandbox_aws.DEPLOY_ROLE):
        run = run_checks("-m", "evening", "-k", "unusual")
    assert run.outcome("security.unusual-activity") == "pass"


def test_root_is_never_allowed(sandbox, run_checks, environments):
    directory = environments(replace={'allow_principals = ["arn:aws:sts::123456789012:assumed-role/entmoot-deploy/"]':
                                      'allow_principals = ["arn:aws:iam::123456789012:root"]'})
    with sandbox.fault("cloudtrail_event", kind="root_usage"):
        run = run_checks("-m", "evening", "-k", "unusual", "--environments-dir", str(directory))
    assert run.outcome("security.unusual-activity") == "fail"


def test_events_older_than_the_window_are_not_reported(sandbox, run_checks):
    with sandbox.fault("cloudtrail_event", kind="trail_stopped", hours_ago=30):
        run = run_checks("-m", "evening", "-k", "unusual")
    assert run.outcome("security.unusual-activity") == "pass"


def _last_hour(sandbox, metric: str) -> float:
    cloudwatch = boto3.client("cloudwatch", endpoint_url=sandbox.env["ENTMOOT_SANDBOX_AWS_ENDPOINT_URL"], region_name="us-east-1",
                              **sandbox_aws.CREDENTIALS)
    end = datetime.now(UTC)
    points = cloudwatch.get_metric_statistics(
        Namespace="AWS/ApplicationELB", MetricName=metric, Statistics=["Sum"], Period=3600, StartTime=end - timedelta(hours=1),
        EndTime=end, Dimensions=[{"Name": "LoadBalancer", "Value": _alb(sandbox)}])["Datapoints"]
    return sum(p["Sum"] for p in points)


def _alb(sandbox) -> str:
    elb = boto3.client("elbv2", endpoint_url=sandbox.env["ENTMOOT_SANDBOX_AWS_ENDPOINT_URL"], region_name="us-east-1",
                       **sandbox_aws.CREDENTIALS)
    return elb.describe_load_balancers(Names=["entmoot-sandbox"])["LoadBalancers"][0]["LoadBalancerArn"].split(":loadbalancer/")[1]


def test_handoff_error_rate_is_stricter_than_morning(sandbox, run_checks):
    """Between 0.5% and 1%: the morning check passes, the handoff check (runbook: < 0.5%) fails. The share of
    failed requests is chosen from the hour's traffic so far, which other tests on this sandbox add to."""
    from conftest import api_traffic

    requests, errors, sent = _last_hour(sandbox, "RequestCount"), _last_hour(sandbox, "HTTPCode_Target_5XX_Count"), 400
    rate = (0.0075 * (requests + sent) - errors) / sent  # lands the hour at 0.75%
    assert 0 < rate <= 1, (requests, errors)
    with sandbox.fault("api_errors", rate=rate):
        api_traffic(sandbox, sent)
        run = run_checks("-m", "morning or handoff", "-k", "error_rate")
    assert run.outcome("api.error-rate") == "pass", run.output[-2000:]
    assert run.outcome("api.error-rate-handoff") == "fail"
    assert "threshold < 0.50%" in run.result("api.error-rate-handoff").message
