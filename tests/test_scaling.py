"""Scaling never leaves ecs.min_count..max_count (runbook: 3..20), whatever it is asked."""

from __future__ import annotations

import json
import re

from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import api_traffic, scale_command
from entmoot_ops.actions import scaled_count


@pytest.mark.parametrize("current", range(0, 25))
def test_every_request_lands_within_bounds(current):
    for asked in range(-5, 40):
        assert 3 <= scaled_count(current, minimum=3, maximum=20, to=asked) <= 20
    for step in range(1, 30):
        result = scaled_count(current, minimum=3, maximum=20, step=step)
        assert 3 <= result <= 20
        assert result == max(3, min(20, current + step))


def test_exactly_one_of_step_or_to():
    with pytest.raises(ValueError):
        scaled_count(3, minimum=3, maximum=20)
    with pytest.raises(ValueError):
        scaled_count(3, minimum=3, maximum=20, step=2, to=5)


def test_scale_command_clamps_waits_and_audits(sandbox, tmp_path):
    try:
        up = scale_command(sandbox, tmp_path, "--to", "50")
        assert up.returncode == 0, up.stderr
        assert "scaled entmoot-api from 3 to 20 (asked 50; bounds 3..20); running 20/20" in up.stdout
        down = scale_command(sandbox, tmp_path, "--to", "0")
        assert "from 20 to 3 (asked 0; bounds 3..20); running 3/3" in down.stdout
        out = scale_command(sandbox, tmp_path, "--out")
        assert "from 3 to 5; running 5/5" in out.stdout
    finally:
        scale_command(sandbox, tmp_path, "--to", "3")
    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [(a["changes"][0]["before"], a["changes"][0]["after"]) for a in audit] == [(3, 20), (20, 3), (3, 5), (5, 3)]


def test_scale_refuses_production_without_yes_in_one_line(sandbox, tmp_path):
    result = scale_command(sandbox, tmp_path, "--env", "prod", "--out")
    assert result.returncode == 2
    assert result.stderr.strip() == "entmoot-ops: prod is production: scaling needs --yes"


def test_scale_out_remediation_is_bounded_and_honest(sandbox, run_checks, environments):
    """Injected latency does not depend on capacity: the scale-out acts (+2) but the re-check says not fixed."""
    # A one-minute window that the slow requests dominate, whatever traffic earlier tests left in the last 15.
    directory = environments(replace={"[thresholds]\n": "[thresholds]\nlatency_window_minutes = 1\n"})
    with sandbox.fault("api_latency", ms=700):
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda _: api_traffic(sandbox, 25, path="/health"), range(8)))
        run = run_checks("-m", "alerts", "-k", "latency", "--remediate", "--environments-dir", str(directory))
    try:
        result = run.result("api.latency-p95")
        assert result.outcome == "fail" and "ecs.scale-out (not fixed)" in run.output
        # The verification waits up to 30 s: it says so every few seconds, with the last reading.
        ticks = re.findall(r"^\.\.\. verifying api.latency-p95 after the remediation \(deadline \d+ s\): .*TargetResponseTime p95", run.output, re.M)
        assert len(ticks) >= 4, run.output[-3000:]
        assert re.search(r"TargetResponseTime p95: measured 7\d\d(\.\d+)? ms, threshold < 500 ms over .* "
                         r"-> remediation ecs.scale-out", result.message), result.message
        acted = next(json.loads(line) for line in (run.reports / "audit.jsonl").read_text().splitlines() if '"acted"' in line)
        assert acted["changes"][0]["before"] == 3 and acted["changes"][0]["after"].startswith("5 ")
    finally:
        scale_command(sandbox, run.reports, "--to", "3")
