"""Scaling never leaves ecs.min_count..max_count (runbook: 3..20), whatever it is asked."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import api_traffic, scale_command
from entmoot_ops.procedures import scaled_count


@pytest.mark.parametrize("current", range(0, 25))
def test_every_request_lands_within_bounds(current):
    for step in range(1, 30):
        result = scaled_count(current, minimum=3, maximum=20, step=step)
        assert 3 <= result <= 20
        assert result == max(3, min(20, current + step))


@pytest.mark.e2e
def test_scale_command_refuses_nonsense_waits_and_audits(sandbox, tmp_path):
    # A count outside the bounds is refused, not clamped: `--to 1000` was a typo of 10, `--to 0` of something else.
    for nonsense in ("1000", "0", "-5", "21", "2"):
        refused = scale_command(sandbox, tmp_path, "--to", nonsense)
        assert refused.returncode == 4, (nonsense, refused.stdout, refused.stderr)
        assert refused.stderr.strip() == (f"entmoot-ops: [sandbox] refused: {nonsense} tasks is outside the bounds 3..20 "
                                          "(ecs.min_count..max_count) (ask for a count within 3..20)") and not refused.stdout
    plan = scale_command(sandbox, tmp_path, "--to", "8", "--dry-run")
    assert plan.returncode == 0 and plan.stdout.startswith("[sandbox] plan: aws ecs update-service --cluster entmoot-sandbox "
                                                           "--service entmoot-api --desired-count 8 (from 3; bounds 3..20); "
                                                           "dry run: no change made"), plan.stdout
    assert not (tmp_path / "audit.jsonl").exists()
    try:
        up = scale_command(sandbox, tmp_path, "--to", "20")
        assert up.returncode == 0, up.stderr
        assert up.stdout.startswith("[sandbox] scaled entmoot-api from 3 to 20; running 20/20"), up.stdout
        out = scale_command(sandbox, tmp_path, "--out")
        assert out.stdout.startswith("[sandbox] entmoot-api already at 20 tasks (bounds 3..20): nothing to do"), out.stdout
        down = scale_command(sandbox, tmp_path, "--to", "3")
        assert "from 20 to 3; running 3/3" in down.stdout
        out = scale_command(sandbox, tmp_path, "--out")
        assert "from 3 to 5; running 5/5" in out.stdout
    finally:
        scale_command(sandbox, tmp_path, "--to", "3")
    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [(a["changes"][0]["before"], a["changes"][0]["after"]) for a in audit] == [(3, 20), (20, 3), (3, 5), (5, 3)]


def test_scale_refuses_production_without_yes_in_one_line(sandbox, tmp_path):
    result = scale_command(sandbox, tmp_path, "--env", "prod", "--out")
    assert result.returncode == 4
    assert result.stderr.strip() == ("entmoot-ops: [prod] is production: scaling needs --yes "
                                      "(add --yes, or --dry-run to see the plan)")


def test_scale_without_credentials_is_diagnosed_as_the_preflight_does(tmp_path):
    """No AWS credentials is not "ECS unreachable": the preflight's line, naming what to set, and no call made."""
    environments = tmp_path / "environments"
    environments.mkdir()
    (environments / "staging.toml").write_text((Path("environments") / "staging.toml").read_text()
                                               .replace("https://api-staging.yourdomain.com", "https://api.staging.test.internal")
                                               .replace("entmoot-redis-staging.xxxxxxxxxxxx.cache", "redis.staging.internal"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ENTMOOT_"))}
    env |= {"AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
            "AWS_EC2_METADATA_DISABLED": "true", "HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "entmoot_ops.cli", "scale", "--env", "staging", "--out",
                             "--environments-dir", str(environments)], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "preflight [staging] FAILED" in result.stderr and "aws.credentials: none found" in result.stderr
    assert "unreachable" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.e2e
def test_scale_out_remediation_is_bounded_and_honest(sandbox, run_checks, environments):
    """Injected latency does not depend on capacity: the scale-out acts (+2) but the re-check says not fixed."""
    # A one-minute window that holds only this test's requests.
    directory = environments(replace={"[thresholds]\n": "[thresholds]\nlatency_window_minutes = 1\n",
                                      "verify_timeout_seconds = 30\n": "verify_timeout_seconds = 20\n"})
    sandbox.forget_traffic(120)
    with sandbox.fault("api_latency", ms=700):
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda _: api_traffic(sandbox, 6, path="/health"), range(8)))  # the window holds these alone
        run = run_checks("-m", "alerts", "-k", "latency", "--remediate", "--environments-dir", str(directory))
    try:
        result = run.result("api.latency-p95")
        assert result.outcome == "fail" and "ecs.scale-out (acted, not fixed)" in run.output
        # The verification waits up to its deadline (20 s here): it says so at least every 5 s (progress.EVERY_SECONDS),
        # with the last reading. Four such intervals leave room for two lines even when one re-check takes several seconds.
        ticks = re.findall(r"^\.\.\. verifying api.latency-p95 after the remediation \(deadline \d+ s\): .*TargetResponseTime p95", run.output, re.M)
        assert len(ticks) >= 2, run.output[-3000:]
        # At least the injected 700 ms: what the handler adds on top depends on this machine, and is not judged.
        measured = re.search(r"not fixed by ecs.scale-out \(.*\): after it, TargetResponseTime p95: measured ([\d.]+) ms, "
                             r"threshold < 500 ms over ", result.message)
        assert measured and float(measured.group(1)) >= 700, result.message
        acted = next(json.loads(line) for line in (run.reports / "audit.jsonl").read_text().splitlines() if '"acted"' in line)
        assert acted["changes"][0]["before"] == 3 and acted["changes"][0]["after"].startswith("5 ")
    finally:
        scale_command(sandbox, run.reports, "--to", "3")
