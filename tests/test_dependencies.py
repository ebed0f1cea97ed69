"""A dependency that is down or hung is an *error* outcome within its timeout; the other checks carry on.

Each dependency is stopped (refuses connections) and hung (SIGSTOP: accepts TCP, never answers). The
sandbox environment's timeouts are connect 1 s / read 2 s with one AWS attempt.
"""

from __future__ import annotations

import os
import re
import signal

import pytest

AWS_CHECKS = {"alarms.none-firing", "alarms.insufficient-data", "ecs.service-steady", "rds.available",
              "rds.free-storage", "api.error-rate", "redis.hit-rate", "redis.evictions"}
PRIMARY_CHECKS = {"replication.streaming", "replication.slots-active", "jobs.pending-age", "jobs.stuck-running",
                  "postgres.connections"}

# dependency -> (checks that must be errors, checks that may legitimately fail instead of pass). hosts.reach fails
# for each: the on-call host cannot connect to a dependency that is down (a frozen one still accepts TCP).
EXPECTED = {
    "api": ({"api.health", "api.auth-enforced"}, {"hosts.reach", "hosts.clock"}),  # the API's Date is the clock source
    # The API's /health reports its database as failing, and its routes answer 500 once past authentication, or time
    # out: the API's circuit then opens, and the clock (its Date) is not asked again.
    "primary": (PRIMARY_CHECKS, {"api.health", "api.auth-enforced", "hosts.reach", "hosts.clock"}),
    "replica": ({"replication.lag"}, {"replication.streaming", "replication.slots-active", "hosts.reach"}),
    "redis": ({"redis.reachable", "redis.memory"}, {"api.health", "hosts.reach"}),
    "aws": (AWS_CHECKS, {"hosts.reach"}),
}
PER_CHECK_LIMIT = 8  # seconds: connect 1 s + read 2 s, libpq's 2 s minimum connect timeout, and slack
RUN_LIMIT = 60


def _verify(run, dependency):
    errors, may_fail = EXPECTED[dependency]
    outcomes = run.by_outcome()
    assert errors <= outcomes.get("error", set()) <= errors | may_fail, (outcomes, run.output[-3000:])
    assert outcomes.get("fail", set()) <= may_fail, outcomes
    for check_id in errors:
        assert run.result(check_id).junit == "error", run.result(check_id)  # could not measure: not a <failure>
    assert run.returncode == 1
    for check_id in errors:
        result = run.result(check_id)
        assert "unreachable" in result.message, result.message
        assert result.seconds < PER_CHECK_LIMIT, (check_id, result.seconds)
    assert run.seconds < RUN_LIMIT


@pytest.mark.parametrize("dependency", sorted(EXPECTED))
def test_stopped_dependency_is_an_error_and_the_run_goes_on(dependency, sandbox, run_checks):
    sandbox.component(dependency, "stop")
    try:
        run = run_checks("-m", "morning")
    finally:
        sandbox.component(dependency, "start")
    _verify(run, dependency)


# Timeouts with room for attempts: a frozen endpoint's whole budget is attempts x read for AWS, one read elsewhere.
BUDGET_TIMEOUTS = "connect_seconds = 1\nread_seconds = 3\naws_max_attempts = 2"


@pytest.mark.parametrize("dependency", sorted(EXPECTED))
@pytest.mark.usefixtures("forgets_its_traffic")  # the API's requests that waited on the frozen dependency are slow ones
def test_hung_dependency_costs_one_timeout_budget_per_run(dependency, sandbox, run_checks, environments):
    """Before the circuit breaker, each check paid the budget again: a frozen AWS endpoint cost 8 x 3 x 10 s. The
    checks now measure at once: they wait for it side by side, and a call made after its circuit opened is refused."""
    directory = environments(replace={"connect_seconds = 1\nread_seconds = 2\naws_max_attempts = 1": BUDGET_TIMEOUTS})
    healthy = run_checks("-m", "morning", "--environments-dir", str(directory))
    assert healthy.returncode == 0, healthy.output[-3000:]
    budget = 2 * 3 if dependency == "aws" else 3
    pid = sandbox.pids["supervisor" if dependency == "aws" else dependency]
    os.kill(pid, signal.SIGSTOP)
    try:
        run = run_checks("-m", "morning", "--environments-dir", str(directory))
    finally:
        os.kill(pid, signal.SIGCONT)
    _verify(run, dependency)
    # The checks that need it wait for it at the same time: the run pays the budget once, not once per check.
    assert run.seconds <= healthy.seconds + budget + 5, (run.seconds, healthy.seconds, budget)
    errors = [run.result(c) for c in EXPECTED[dependency][0]]
    for error in errors:  # each waited out its own timeout beside the others, or asked after the circuit opened
        refused = re.search(r"no answer from \S+ at \d\d:\d\d:\d\d after \d+\.\d s", error.message)
        assert refused or re.search(r"timed out|Timeout|timeout", error.message), error.message
        assert not refused or error.seconds < budget, error  # it may have waited for a session the others held


def test_sandbox_recovers_after_the_dependency_tests(sandbox, run_checks):
    sandbox.sync()
    run = run_checks("-m", "morning")
    assert run.by_outcome() == {"pass": {r.check_id for r in run.results}}, run.output[-3000:]
