"""The remediation flow: a plan by default; --remediate acts, re-checks and audits; production needs --yes."""

from __future__ import annotations

import json
import math
import re
import time

import boto3

from entmoot_ops.sandbox import aws as sandbox_aws

from conftest import settle


def _allocated_gib(sandbox) -> int:
    rds = boto3.client("rds", endpoint_url=sandbox.env["ENTMOOT_SANDBOX_AWS_ENDPOINT_URL"], region_name="us-east-1",
                       **sandbox_aws.CREDENTIALS)
    return rds.describe_db_instances(DBInstanceIdentifier=sandbox_aws.DB_INSTANCE)["DBInstances"][0]["AllocatedStorage"]


def _audit(run) -> list[dict]:
    path = run.reports / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_failing_check_shows_its_plan_and_changes_nothing(sandbox, run_checks):
    before = _allocated_gib(sandbox)
    with sandbox.fault("rds_low_storage", free_ratio=0.05):
        settle(sandbox)
        run = run_checks("-m", "morning", "-k", "free_storage")
    assert run.outcome("rds.free-storage") == "fail"
    assert "Remediation plan for rds.free-storage [sandbox] (rds.increase-storage, planned)" in run.output
    assert f"--allocated-storage {math.ceil(before * 1.25)} --apply-immediately  (from {before} GiB; bound 500 GiB)" in run.output
    assert _allocated_gib(sandbox) == before
    assert _audit(run) == []


def test_remediate_increases_storage_rechecks_and_audits(sandbox, run_checks):
    before = _allocated_gib(sandbox)
    with sandbox.fault("rds_low_storage", free_ratio=0.05):
        settle(sandbox)
        run = run_checks("-m", "morning", "-k", "free_storage", "--remediate")
    # Fixed now, but something was wrong: a failure that was fixed, with what changed and the readings before and after.
    assert run.returncode == 1, run.output[-3000:]
    assert run.outcome("rds.free-storage") == "fixed"
    fixed = run.result("rds.free-storage")
    assert fixed.junit == "failure" and re.match(
        r"fixed by rds.increase-storage \(rds:ModifyDBInstance AllocatedStorage: \d+ GiB -> \d+ GiB\); before: free storage "
        r"\(FreeStorageSpace / AllocatedStorage\): measured \d\.\d+%, threshold > 10.00% .*; after: free storage .* > 10.00%$",
        fixed.message), fixed.message
    assert _allocated_gib(sandbox) == math.ceil(before * 1.25)
    events = _audit(run)
    assert [e["event"] for e in events] == ["acted", "verified"]
    acted = events[0]
    assert acted["changes"] == [{"action": "rds:ModifyDBInstance AllocatedStorage", "before": f"{before} GiB",
                                 "after": f"{math.ceil(before * 1.25)} GiB"}]
    assert {"who", "time", "env", "check", "remediation"} <= acted.keys() and acted["env"] == "sandbox"
    assert "rds.increase-storage (fixed)" in run.output


def test_remediate_terminates_only_long_idle_application_sessions(sandbox, run_checks, environments):
    directory = environments(replace={"[thresholds]\n": "[thresholds]\nidle_session_max_minutes = 0.02\n"})
    with sandbox.fault("idle_sessions", count=45):
        time.sleep(2)
        run = run_checks("-m", "morning", "-k", "connection_headroom", "--remediate", "--environments-dir", str(directory))
    assert run.outcome("postgres.connections") == "fixed", run.output[-3000:]
    acted = next(e for e in _audit(run) if e["event"] == "acted")
    terminated = int(acted["changes"][0]["after"].split()[0])
    assert terminated >= 45
    assert "entmoot_app sessions idle > 1.2 s" in acted["changes"][0]["action"]


def test_production_needs_yes(sandbox, run_checks, environments):
    directory = environments("prodlike", replace={"production = false": "production = true"})
    before = _allocated_gib(sandbox)
    with sandbox.fault("rds_low_storage", free_ratio=0.05):
        settle(sandbox)
        run = run_checks("-m", "morning", "-k", "free_storage", "--env", "prodlike", "--remediate",
                         "--environments-dir", str(directory))
    assert run.outcome("rds.free-storage") == "fail"
    assert "refused: production needs --yes" in run.output
    assert _allocated_gib(sandbox) == before
    assert [e["event"] for e in _audit(run)] == ["refused"]


def test_yes_without_remediate_is_a_usage_error(run_checks):
    run = run_checks("-m", "morning", "--yes")
    assert run.returncode == 4
    assert "--yes confirms an action: it needs --remediate, a load run (-m load) or chaos (-m chaos)" in run.output
    assert "Traceback" not in run.output


def test_a_procedure_is_shown_not_executed(sandbox, run_checks):
    with sandbox.fault("api_degraded"):
        settle(sandbox)
        run = run_checks("-m", "morning", "-k", "api_health", "--remediate")
    assert run.outcome("api.health") == "fail"
    assert "api.investigate-health (manual)" in run.output
    assert "read the 'checks' of the /health body" in run.output
