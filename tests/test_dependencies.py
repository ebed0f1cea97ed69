"""A dependency that is down or hung is an *error* outcome within its timeout; the other checks carry on.

Each dependency is stopped (refuses connections) and hung (SIGSTOP: accepts TCP, never answers). The
sandbox environment's timeouts are connect 1 s / read 2 s with one AWS attempt.
"""

from __future__ import annotations

import os
import signal

import pytest

AWS_CHECKS = {"alarms.none-firing", "alarms.insufficient-data", "ecs.service-steady", "rds.available",
              "rds.free-storage", "api.error-rate", "redis.hit-rate", "redis.evictions"}
PRIMARY_CHECKS = {"replication.streaming", "replication.slots-active", "jobs.pending-age", "jobs.stuck-running",
                  "postgres.connections"}

# dependency -> (checks that must be errors, checks that may legitimately fail instead of pass)
EXPECTED = {
    "api": ({"api.health", "api.auth-enforced"}, set()),
    # The API's /health reports its database as failing, and its routes answer 500 once past authentication.
    "primary": (PRIMARY_CHECKS, {"api.health", "api.auth-enforced"}),
    "replica": ({"replication.lag"}, {"replication.streaming", "replication.slots-active"}),
    "redis": ({"redis.reachable", "redis.memory"}, {"api.health"}),
    "aws": (AWS_CHECKS, set()),
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


@pytest.mark.parametrize("dependency", sorted(EXPECTED))
def test_hung_dependency_is_an_error_within_its_timeout(dependency, sandbox, run_checks):
    pids = sandbox.pids
    pid = pids["supervisor" if dependency == "aws" else dependency]
    os.kill(pid, signal.SIGSTOP)
    try:
        run = run_checks("-m", "morning")
    finally:
        os.kill(pid, signal.SIGCONT)
    _verify(run, dependency)


def test_sandbox_recovers_after_the_dependency_tests(sandbox, run_checks):
    sandbox.sync()
    run = run_checks("-m", "morning")
    assert run.by_outcome() == {"pass": {r.check_id for r in run.results}}, run.output[-3000:]
