"""Incident bundle: High API Error Rate (-m incident -k error_triage). Healthy, then each Common Cause the sandbox
can produce — a bad deployment, an exhausted pool, an external API timing out, a memory leak — named with its
evidence, the measured rate, the threshold and the remediation."""

from __future__ import annotations

import re
import time

import pytest

from conftest import api_traffic, background_traffic, settle

pytestmark = pytest.mark.usefixtures("own_window")  # each judges a window of its own traffic

CHECK = "incident.api-errors"
# The last minute, not 30: the session's sandbox has served other tests' traffic, which would dilute the rate.
LAST_MINUTE = {"[thresholds]\n": "[thresholds]\nincident_window_minutes = 1\n"}


def _run_with(sandbox, run_checks, environments, fault: str, **params):
    """Healthy traffic first, then the fault under traffic: a deployment (or rollback) earlier in the session served
    whole healthy periods before the errors began, so it is not their cause. What the tests before it on this
    worker's sandbox served (their errors) is forgotten first: the window judged holds only this test's."""
    sandbox.forget_traffic(300)
    with background_traffic(sandbox):
        time.sleep(12)  # two whole 5 s periods of healthy traffic, wherever CloudWatch's periods begin
        with sandbox.fault(fault, **params):
            time.sleep(3)
            settle(sandbox)
            return run_checks("-m", "incident", "--check", CHECK, "--environments-dir", str(environments(replace=LAST_MINUTE)))


def test_a_healthy_sandbox_passes(sandbox, run_checks):
    api_traffic(sandbox, 150)
    run = run_checks("-m", "incident", "-k", "error_triage")
    assert run.by_outcome() == {"pass": {CHECK}}, run.output[-3000:]


def test_errors_right_after_a_deploy_name_the_deployment_and_the_rollback(sandbox, run_checks, environments):
    api_traffic(sandbox, 100)
    with sandbox.fault("deploy", version="1.8.0", error_rate=0.5), background_traffic(sandbox):
        time.sleep(3)
        settle(sandbox)
        run = run_checks("-m", "incident", "--check", CHECK, "--environments-dir", str(environments(replace=LAST_MINUTE)))
    failed = run.result(CHECK)
    assert failed.outcome == "fail", run.output[-3000:]
    assert re.search(r"most likely cause: Recent bad deployment \(errors began \d+\.\d min after PRIMARY deployment "
                     r"entmoot-api:\d+ started at .*, within 10 min\) -> roll back to the previous version \(remediation ecs.rollback\)"
                     r": measured \d+\.\d+%, threshold < 1\.00% over .* -> remediation incident.error-cause", failed.message), failed.message
    assert "--task-definition entmoot-api:" in run.output  # the plan is the rollback's, with its target revision


def test_pool_errors_name_the_pool(sandbox, run_checks, environments):
    run = _run_with(sandbox, run_checks, environments, "api_errors", rate=0.3)
    message = run.result(CHECK).message
    assert run.outcome(CHECK) == "fail", run.output[-3000:]
    assert re.search(r"most likely cause: Database connection pool exhausted \(100% of errors are pool/database errors; "
                     r"connections \d+ of \d+ usable\) .*\(remediation postgres.resize-pool\): measured \d+\.\d+%", message), message


def test_timeouts_of_an_external_api_are_not_taken_for_the_database(sandbox, run_checks, environments):
    run = _run_with(sandbox, run_checks, environments, "api_errors", rate=0.3,
                    message="ReadTimeout: elevation API (api.opentopodata.org) did not answer within 10 s")
    message = run.result(CHECK).message
    assert "most likely cause: External API timeouts (100% of errors are timeouts)" in message, message
    assert "(remediation api.check-external-dependencies)" in message
    assert "provider's status page" in run.output  # the procedure's plan


def test_a_memory_leak_is_named_from_the_service_memory(sandbox, run_checks, environments):
    with sandbox.fault("memory_leak", percent=97):
        run = _run_with(sandbox, run_checks, environments, "api_errors", rate=0.3, message="WorkerLostError: worker exited prematurely")
    message = run.result(CHECK).message
    assert re.search(r"most likely cause: Memory leak/OOM \(0% of errors are out-of-memory errors; ECS MemoryUtilization 9\d%\)", message), message
