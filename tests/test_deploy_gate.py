"""The post-deploy gate: go on a good release, no-go with evidence on a bad one, rollback verified."""

from __future__ import annotations

import json
import re
import time

import boto3
import pytest

from conftest import background_traffic, settle
from entmoot_ops import results
from entmoot_ops.config import load_environment
from entmoot_ops.sandbox import aws as sandbox_aws

GATE = {"deploy.version", "deploy.image", "deploy.rollout", "deploy.error-rate", "deploy.latency-p95", "api.auth-enforced"}


def test_gate_passes_on_the_running_release(sandbox, run_checks):
    # Rolled out afresh, as a pipeline that redeploys it: "since the deployment" then holds this test's traffic
    # alone, not what earlier tests served on this worker's sandbox (a saturating load, say).
    with sandbox.fault("deploy", version="1.4.2"), background_traffic(sandbox):
        time.sleep(1.5)
        run = run_checks("-m", "deploy", "--expected-version", "1.4.2")
    assert run.returncode == 0, run.output[-3000:]
    assert run.by_outcome() == {"pass": GATE}


def test_gate_needs_the_expected_version(run_checks):
    run = run_checks("-m", "deploy")
    assert run.returncode == 4
    assert "the deploy gate needs --expected-version" in run.output and "Traceback" not in run.output


def test_gate_fails_when_the_expected_release_is_not_running(run_checks):
    run = run_checks("-m", "deploy", "-k", "version or image", "--expected-version", "9.9.9")
    assert run.returncode == 1
    assert "version in /health: measured 1.4.2, threshold == 9.9.9" in run.result("deploy.version").message
    assert "measured 1.4.2, threshold == 9.9.9" in run.result("deploy.image").message


def test_image_missing_from_ecr_fails(sandbox, run_checks):
    ecr = boto3.client("ecr", endpoint_url=sandbox.env["ENTMOOT_SANDBOX_AWS_ENDPOINT_URL"], region_name="us-east-1",
                       **sandbox_aws.CREDENTIALS)
    with sandbox.fault("deploy", version="1.6.0"):
        ecr.batch_delete_image(repositoryName=sandbox_aws.ECR_REPO, imageIds=[{"imageTag": "1.6.0"}])
        run = run_checks("-m", "deploy", "-k", "image", "--expected-version", "1.6.0")
    assert run.outcome("deploy.image") == "fail"
    assert "entmoot-api:1.6.0 in ECR: measured no, threshold == yes" in run.result("deploy.image").message


def test_bad_release_fails_then_rollback_is_verified_then_gate_passes_on_previous(sandbox, run_checks):
    with sandbox.fault("deploy", version="1.5.0", error_rate=0.6), background_traffic(sandbox):
        time.sleep(2)
        settle(sandbox)
        nogo = run_checks("-m", "deploy", "--expected-version", "1.5.0")
        remediated = run_checks("-m", "deploy", "--expected-version", "1.5.0", "--remediate")
        time.sleep(1.5)
        settle(sandbox)
        previous = run_checks("-m", "deploy", "--expected-version", "1.4.2")
    assert nogo.returncode == 1
    failed = nogo.result("deploy.error-rate")
    assert failed.outcome == "fail"
    assert re.search(r"5XX error rate since deployment \(\d+ of \d+ requests\): measured [3-6]\d\.\d+%, threshold < 1\.00% "
                     r"over .* -> remediation ecs.rollback", failed.message), failed.message
    assert {"deploy.version", "deploy.image", "deploy.rollout"} <= nogo.by_outcome()["pass"]
    assert "--task-definition entmoot-api:" in nogo.output

    # A gate that rolled the release back has not verified it: red, with the rollback in the junit <failure>.
    assert remediated.returncode == 1, remediated.output[-3000:]
    fixed = remediated.result("deploy.error-rate")
    assert fixed.outcome == "fixed" and fixed.junit == "failure", remediated.output[-3000:]
    assert re.search(r"fixed by ecs.rollback \(release rolled back from entmoot-api:\d+ \(image 1\.5\.0\) to entmoot-api:\d+ "
                     r"\(image 1\.4\.2\)\); before: 5XX error rate since deployment .*measured [3-6]\d\.\d+%.*; after: ",
                     fixed.message), fixed.message
    assert "FIXED    deploy.error-rate" in remediated.output
    junit = (remediated.reports / "junit.xml").read_text()
    assert re.search(r'<failure message="FIXED fixed by ecs.rollback \(release rolled back from', junit), junit[:2000]
    audit = [json.loads(line) for line in (remediated.reports / "audit.jsonl").read_text().splitlines()]
    acted = next(a for a in audit if a["event"] == "acted")
    assert acted["remediation"] == "ecs.rollback" and "stable after" in acted["changes"][0]["after"]

    assert previous.returncode == 0, previous.output[-3000:]
    assert previous.by_outcome() == {"pass": GATE}


def test_a_rollback_that_cannot_be_verified_says_what_it_did_and_why_it_is_not_fixed(sandbox, run_checks, environments):
    """No traffic after the rollback: the gate cannot judge the previous release. Every report says the rollback
    was done (from which release to which) and why it is not fixed; none shows it as a plan still to carry out."""
    directory = environments(replace={"verify_timeout_seconds = 30": "verify_timeout_seconds = 3",
                                      "min_requests = 20": "min_requests = 5", "bake_timeout_seconds = 60": "bake_timeout_seconds = 1"})
    period = load_environment("sandbox", directory).thresholds.metric_period_seconds
    with sandbox.fault("deploy", version="1.5.0", error_rate=0.6):
        with background_traffic(sandbox):
            time.sleep(2 * period)  # a whole period after the deployment's start holds traffic: the judged window
        settle(sandbox)
        run = run_checks("-m", "deploy", "-k", "error_rate", "--expected-version", "1.5.0", "--remediate",
                         "--environments-dir", str(directory))
    assert run.returncode == 1, run.output[-3000:]
    said = (r"not fixed by ecs.rollback \(release rolled back from entmoot-api:\d+ \(image 1\.5\.0\) to entmoot-api:\d+ "
            r"\(image 1\.4\.2\)\): after it, not judged yet: too little traffic to judge .*; before: 5XX error rate since "
            r"deployment .*measured [3-6]\d\.\d+%")
    result = run.result("deploy.error-rate")
    assert result.outcome == "fail" and re.search(said, result.message), result.message

    summary = run.output[run.output.index("= entmoot checks ="):]
    assert "-> remediation ecs.rollback (acted, not fixed)" in summary, summary
    assert re.search(r"^Remediation ecs.rollback acted for deploy.error-rate \[sandbox\] \(not fixed\):\n"
                     r"  - done: release rolled back from entmoot-api:\d+ \(image 1\.5\.0\) to .*\n"
                     r"  - after it: not judged yet: too little traffic", summary, re.M), summary
    assert "Remediation plan" not in summary and "--task-definition" not in summary

    [checked] = json.loads((run.reports / "summary.json").read_text())["checks"]
    assert checked["remediation_state"] == "acted, not fixed" and checked["plan"] == [], checked
    assert re.search(said, checked["message"]) and checked["done"][0].startswith("release rolled back from"), checked
    [junit] = results.read_junit(run.reports / "junit.xml")
    assert junit.done == checked["done"] and junit.plan == []

    [allure] = [json.loads(path.read_text()) for path in (run.reports / "allure-results").glob("*-result.json")
                if "deploy.error-rate" in path.read_text()]
    assert re.search(said, allure["statusDetails"]["message"]), allure["statusDetails"]
    steps = [step["name"] for step in allure.get("steps", [])]
    assert "Remediation executed" in steps and not any(step.startswith("Remediation plan") for step in steps), steps


def test_slow_release_fails_the_latency_check(sandbox, run_checks):
    with sandbox.fault("deploy", version="1.7.0", latency_ms=700), background_traffic(sandbox, path="/health", pause=0.2):
        time.sleep(2)
        run = run_checks("-m", "deploy", "-k", "latency", "--expected-version", "1.7.0")
    failed = run.result("deploy.latency-p95")
    assert failed.outcome == "fail"
    assert re.search(r"black-box p95 of 20 requests to /health: measured 7\d\d(\.\d+)? ms, threshold < 500 ms "
                     r"-> remediation ecs.rollback", failed.message), failed.message


def test_stuck_rollout_fails_at_the_deadline_with_the_deployment_state(sandbox, run_checks, environments):
    directory = environments(replace={"rollout_timeout_seconds = 30": "rollout_timeout_seconds = 12"})
    with sandbox.fault("ecs_stuck_rollout"):
        started = time.monotonic()
        run = run_checks("-m", "deploy", "-k", "rollout", "--expected-version", "1.4.2", "--environments-dir", str(directory))
        elapsed = time.monotonic() - started
    failed = run.result("deploy.rollout")
    assert failed.outcome == "fail"
    assert "(deadline 12 s): PRIMARY entmoot-api:" in failed.message
    assert "IN_PROGRESS running 2/3 pending 1" in failed.message
    assert 11 <= failed.seconds < 15 and elapsed < 40
    # Not silent while it waits: the deployment state every 5 s.
    ticks = re.findall(r"^\.\.\. waiting for entmoot-api to be stable \(deadline 12 s\): PRIMARY .* IN_PROGRESS", run.output, re.M)
    assert len(ticks) >= 2, run.output[-2000:]


def test_gate_on_several_environments_in_parallel(sandbox, run_checks, environments):
    directory = environments("second")
    (directory / "sandbox.toml").write_text((directory / "second.toml").read_text())
    with background_traffic(sandbox):
        time.sleep(1.5)
        run = run_checks("-m", "deploy", "--expected-version", "1.4.2", "--env", "sandbox", "--env", "second",
                         "-n", "2", "--environments-dir", str(directory))
    assert run.returncode == 0, run.output[-3000:]
    assert len(run.results) == 2 * len(GATE)


@pytest.mark.parametrize("marker", ["evening", "handoff"])
def test_checklist_passes_on_the_healthy_sandbox(marker, sandbox, run_checks):
    run = run_checks("-m", marker)
    assert run.returncode == 0, run.output[-3000:]
    assert set(run.by_outcome()) == {"pass"}
