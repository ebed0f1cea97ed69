"""Vertical Scaling (runbook): RDS CPU consistently at 90%+ plans the next instance class; where allowed and
applied immediately, the sandbox's instance grows (its CPU halves per step) and the re-check passes."""

from __future__ import annotations

import json
import time

import boto3
import pytest

from conftest import settle
from entmoot_ops.sandbox import aws as sandbox_aws

SHORT = {"rds_cpu_window_minutes = 1\n": "rds_cpu_window_minutes = 0.25\n"}
ALLOW = {**SHORT, "[rds]\n": "[rds]\nscaling_allowed = true\napply_immediately = true\n"}


def _rds(sandbox):
    return boto3.client("rds", endpoint_url=sandbox.env["ENTMOOT_SANDBOX_AWS_ENDPOINT_URL"], region_name="us-east-1",
                        **sandbox_aws.CREDENTIALS)


@pytest.mark.e2e
def test_sustained_cpu_fails_with_a_plan_for_the_next_class(sandbox, run_checks, environments):
    with sandbox.fault("rds_cpu_pressure", percent=95):
        time.sleep(16)  # a whole 15 s window of it: "consistently", not a moment
        settle(sandbox)
        run = run_checks("-m", "alerts", "-k", "cpu_sustained", "--environments-dir", str(environments(replace=SHORT)))
    failed = run.result("rds.cpu-sustained")
    assert failed.outcome == "fail", run.output[-2000:]
    assert "lowest CPU of any period of entmoot-sandbox: measured 9" in failed.message and "-> remediation rds.scale-up" in failed.message
    assert "--db-instance-class db.r6i.2xlarge (applied in the next maintenance window)" in run.output
    assert "acting needs rds.scaling_allowed = true" in run.output


@pytest.mark.e2e
def test_scale_up_applied_now_where_allowed_is_verified(sandbox, run_checks, environments):
    rds = _rds(sandbox)
    with sandbox.fault("rds_cpu_pressure", percent=95):
        time.sleep(16)
        settle(sandbox)
        try:
            run = run_checks("-m", "alerts", "-k", "cpu_sustained", "--remediate", "--environments-dir", str(environments(replace=ALLOW)))
        finally:
            rds.modify_db_instance(DBInstanceIdentifier=sandbox_aws.DB_INSTANCE, DBInstanceClass=sandbox_aws.SEEDED_CLASS,
                                   ApplyImmediately=True)
    assert run.outcome("rds.cpu-sustained") == "fixed", run.output[-3000:]
    acted = next(json.loads(line) for line in (run.reports / "audit.jsonl").read_text().splitlines() if '"acted"' in line)
    assert acted["changes"] == [{"action": "rds:ModifyDBInstance DBInstanceClass", "before": "db.r6i.xlarge", "after": "db.r6i.2xlarge"}]


def test_a_class_change_waits_for_the_maintenance_window_unless_applied_now(sandbox):
    rds = _rds(sandbox)
    try:
        waiting = rds.modify_db_instance(DBInstanceIdentifier=sandbox_aws.DB_INSTANCE, DBInstanceClass="db.r6i.2xlarge",
                                         ApplyImmediately=False)["DBInstance"]
        assert waiting["DBInstanceClass"] == sandbox_aws.SEEDED_CLASS
        assert waiting["PendingModifiedValues"] == {"DBInstanceClass": "db.r6i.2xlarge"}
    finally:
        now = rds.modify_db_instance(DBInstanceIdentifier=sandbox_aws.DB_INSTANCE, DBInstanceClass=sandbox_aws.SEEDED_CLASS,
                                     ApplyImmediately=True)["DBInstance"]
    assert now["DBInstanceClass"] == sandbox_aws.SEEDED_CLASS and not now.get("PendingModifiedValues")
