"""Alert: High CPU Utilization (>80%): the ECS service's and the RDS instance's CPU, each named in the verdict."""

from __future__ import annotations

import time

import pytest

from conftest import background_traffic, settle

SHORT = {"cpu_alert_window_minutes = 1\n": "cpu_alert_window_minutes = 0.25\n"}


def test_healthy_cpu_passes_with_both_sources(sandbox, run_checks):
    run = run_checks("-m", "alerts", "--check", "cpu.high")
    result = run.result("cpu.high")
    assert result.outcome == "pass", run.output[-2000:]
    summary = " ".join(run.output.split())  # the summary wraps its readings to the terminal's width
    assert "ECS service entmoot-api CPU (average)" in summary and "RDS entmoot-sandbox CPU (average)" in summary


def test_busy_database_fails_naming_rds(sandbox, run_checks, environments):
    with sandbox.fault("rds_cpu_pressure", percent=95):
        time.sleep(16)  # a whole 15 s window of it
        settle(sandbox)
        run = run_checks("-m", "alerts", "--check", "cpu.high", "--environments-dir", str(environments(replace=SHORT)))
    failed = run.result("cpu.high")
    assert failed.outcome == "fail", run.output[-2000:]
    assert "RDS entmoot-sandbox CPU (average): measured 9" in failed.message and "threshold < 80.00%" in failed.message
    assert "-> remediation cpu.identify-source" in failed.message


@pytest.mark.usefixtures("own_window")  # the fleet's CPU of this test alone
def test_a_saturated_service_fails_naming_ecs(sandbox, run_checks, environments):
    """Two requests a second per task (6 for the service) and steady traffic: the fleet runs at its capacity."""
    with sandbox.fault("api_task_rate", rate=2), background_traffic(sandbox):
        time.sleep(16)
        settle(sandbox)
        run = run_checks("-m", "alerts", "--check", "cpu.high", "--environments-dir", str(environments(replace=SHORT)))
    failed = run.result("cpu.high")
    assert failed.outcome == "fail", run.output[-2000:]
    assert "ECS service entmoot-api CPU (average): measured" in failed.message and "threshold < 80.00%" in failed.message
