"""CloudWatch's delay, as the sandbox has it by default: a datapoint is readable 10 to 25 s (1 to 2.5 of its 10-s
periods) after its timestamp, as AWS makes a one-minute datapoint readable 60 to 150 s late. The checklists hold
on a fresh sandbox, and a fault that begins now is detected once its datapoints are readable."""

from __future__ import annotations

import os
import time

import pytest

from conftest import api_traffic, checks_runner
from entmoot_ops.sandbox.handle import start

CHECKLISTS = "morning or evening or deploy or handoff or incident or alerts or weekly or monthly"


@pytest.fixture(scope="module")
def delayed(tmp_path_factory):
    """A sandbox with the delay of a user's sandbox (the tests' own show datapoints at once)."""
    tests_delay = os.environ.pop("ENTMOOT_SANDBOX_CLOUDWATCH_DELAY")
    try:
        handle = start(tmp_path_factory.mktemp("delayed") / "state.json")
    finally:
        os.environ["ENTMOOT_SANDBOX_CLOUDWATCH_DELAY"] = tests_delay
    handle.users = 1
    yield handle
    handle.release()


def test_every_checklist_holds_the_moment_the_delayed_sandbox_is_ready(delayed, tmp_path):
    assert delayed.state["cloudwatch_delay"] == [10, 25]
    run = checks_runner(delayed, tmp_path)("-m", CHECKLISTS, "--expected-version", "1.4.2")
    assert run.returncode == 0, run.output[-4000:]
    assert {r.outcome for r in run.results} <= {"pass", "skip"}


def test_a_fault_that_begins_now_is_detected_once_its_datapoints_are_readable(delayed, tmp_path):
    run_checks = checks_runner(delayed, tmp_path)
    with delayed.fault("api_errors", rate=0.6):
        began = time.monotonic()
        api_traffic(delayed, 120)
        verdicts = []
        while time.monotonic() - began < 90:
            run = run_checks("-m", "morning", "--check", "api.error-rate")
            verdicts.append((round(time.monotonic() - began, 1), run.outcome("api.error-rate")))
            if verdicts[-1][1] == "fail":
                break
            api_traffic(delayed, 20)
    print(f"api.error-rate under CloudWatch's delay: {verdicts}")  # the detection delay, for the closing note
    detected = [at for at, outcome in verdicts if outcome == "fail"]
    assert detected, verdicts
    assert verdicts[0][1] == "pass"  # the errors were not readable yet: no datapoint shows before 10 s
    assert detected[0] >= 10
