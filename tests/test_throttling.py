"""Throttling as AWS answers it: botocore's standard retries absorb a short burst; a lasting one costs one API's
retries once in the run, then every check that needs that API says so at once, and the others judge as usual."""

from __future__ import annotations

import re

# The checks of the morning and the deploy gate that read ECS.
READ_ECS = {"ecs.service-steady", "deploy.image", "deploy.rollout", "deploy.error-rate", "deploy.latency-p95"}


def _attempts(environments, attempts: int):
    return environments(replace={"aws_max_attempts = 1": f"aws_max_attempts = {attempts}"})


def test_a_short_burst_is_retried_within_the_attempts(sandbox, run_checks, environments):
    with sandbox.fault("aws_throttled", service="ecs", calls=2):
        run = run_checks("-m", "morning", "-k", "ecs_service_steady", "--environments-dir", str(_attempts(environments, 3)))
        left = sandbox.control("GET", "state")["throttled"]["ecs"]
    assert run.outcome("ecs.service-steady") == "pass", run.output[-3000:]
    assert left == 0  # both refusals were met, and retried


def test_a_lasting_throttle_costs_its_retries_once_and_says_so_on_each_check(sandbox, run_checks, environments):
    with sandbox.fault("aws_throttled", service="ecs", calls=1000):
        run = run_checks("-m", "morning or deploy", "--expected-version", "1.4.2",
                         "--environments-dir", str(_attempts(environments, 2)))
        left = sandbox.control("GET", "state")["throttled"]["ecs"]
    assert left == 1000 - 2, "after its two attempts, ECS was not asked again in this run"
    errored = {r.check_id: r.message for r in run.results if r.outcome == "error"}
    assert set(errored) == READ_ECS, run.output[-3000:]
    first, *later = sorted(errored.values(), key=lambda m: "not asked again" in m)
    assert "throttled on ecs:DescribeServices (ThrottlingException) after 2 attempts" in first, first
    assert all(re.search(r"throttled at \d\d:\d\d:\d\d \(ThrottlingException after 2 attempts\); not asked again in this run", m)
               for m in later), later
    assert {r.outcome for r in run.results if r.check_id not in READ_ECS} <= {"pass", "skip"}
