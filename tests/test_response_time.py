"""Incident bundle: API Response Time High (-m incident -k response_time). Healthy; one slow endpoint named from the
logs with its p95; saturated tasks named from the service's CPU, with the scale-out as the remedy."""

from __future__ import annotations

import re
import time

import pytest

from conftest import api_traffic, background_traffic, settle

pytestmark = pytest.mark.usefixtures("own_window")  # each judges a window of its own traffic

CHECKS = {"incident.response-time", "api.slow-endpoints", "api.requests-per-host", "ecs.utilisation"}


def _short_window(environments, seconds: int):
    """Only the test's own traffic: the session's sandbox has served other tests' (and load tests') before."""
    return str(environments(replace={"[thresholds]\n": f"[thresholds]\nlatency_window_minutes = {seconds / 60}\n"}))


def test_a_healthy_sandbox_passes(sandbox, run_checks, environments):
    api_traffic(sandbox, 150)
    run = run_checks("-m", "incident", "-k", "response_time or slow_endpoints or requests_per_host or utilisation",
                     "--environments-dir", _short_window(environments, 30))
    assert run.by_outcome() == {"pass": CHECKS}, run.output[-3000:]


def test_a_slow_endpoint_is_named_with_its_p95_from_the_logs(sandbox, run_checks, environments):
    # Three clients of the slow endpoint: its requests are more than 5% of all, so the p95 of all is theirs.
    with sandbox.fault("slow_endpoints", paths={"/api/buildings": 1500}), background_traffic(sandbox, path="/api/buildings?x=1&y=1"), \
            background_traffic(sandbox, path="/api/buildings?x=2&y=1"), background_traffic(sandbox, path="/api/buildings?x=3&y=1"):
        time.sleep(10)
        settle(sandbox)
        run = run_checks("-m", "incident", "-k", "response_time or slow_endpoints", "--environments-dir", _short_window(environments, 20))
    message = run.result("incident.response-time").message
    assert run.outcome("incident.response-time") == "fail", run.output[-3000:]
    # 1500 ms injected, plus the handler's own work, which a busy machine lengthens by up to a few hundred ms.
    slow_ms = r"1[5-9]\d\d"
    assert re.search(rf"most likely cause: Slow endpoints \(/api/buildings p95 {slow_ms} ms over \d+ requests >= 1000 ms\) .*"
                     rf"\(remediation api.profile-slow-endpoints\): measured {slow_ms}(\.\d+)? ms, threshold < 500 ms", message), message
    slow = run.result("api.slow-endpoints").message
    assert re.search(rf"\(/api/buildings p95 {slow_ms} ms, max {slow_ms} ms over \d+ requests\): measured 1, threshold == 0", slow), slow
    assert "py-spy" in run.output  # the procedure's plan


def test_saturated_tasks_are_named_and_scaled_out(sandbox, run_checks, environments):
    # One client is enough: the fleet's CPUUtilization is its busy time, so a client that always has a request waiting
    # keeps it near 100% whatever this machine's speed, and its requests (666 ms each) stay few for the other tests.
    with sandbox.fault("api_task_rate", rate=0.5), background_traffic(sandbox, path="/api/projects/2", pause=0):
        time.sleep(10)
        settle(sandbox)
        run = run_checks("-m", "incident", "-k", "response_time or utilisation", "--environments-dir", _short_window(environments, 15))
    message = run.result("incident.response-time").message
    assert run.outcome("incident.response-time") == "fail", run.output[-3000:]
    assert re.search(r"most likely cause: Tasks saturated \(ECS CPU \d+% >= 70%\) -> scale horizontally .*\(remediation ecs.scale-out\)",
                     message), message
    # Judged on the latest complete period, which it names.
    assert run.outcome("ecs.utilisation") == "fail" and re.search(
        r"ECS service CPU \(period \d\d:\d\d:\d\d–\d\d:\d\d:\d\dZ\): measured", run.result("ecs.utilisation").message)
    assert "--desired-count" in run.output  # the scale-out's plan, with its bounds
