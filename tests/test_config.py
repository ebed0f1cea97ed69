"""Configuration mistakes: one clear line naming the file and key (each mistake of a file, at once), pytest's
usage-error exit code (4)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from entmoot_ops.config import load_environment
from entmoot_ops.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", ["sandbox", "staging", "prod"])
def test_shipped_environments_are_valid(name):
    env = load_environment(name, ROOT / "environments")
    assert env.name == name
    assert env.thresholds.error_rate_max == 0.01 and env.thresholds.replication_lag_max_seconds == 60


def test_staging_names_staging_resources_only():
    text = (ROOT / "environments" / "staging.toml").read_text()
    assert "prod" not in text.replace("production = false", "")
    env = load_environment("staging", ROOT / "environments")
    assert env.redis.replication_group == "entmoot-redis-staging" and "entmoot-redis-staging." in env.redis.url


def test_prod_carries_the_runbook_names():
    env = load_environment("prod", ROOT / "environments")
    assert (env.ecs.cluster, env.ecs.service, env.rds.instance, env.logs.group) == (
        "entmoot-prod", "entmoot-api", "entmoot-prod", "/ecs/entmoot-prod")
    assert env.production and env.ecs.min_count == 3 and env.ecs.max_count == 20


MISTAKES = [
    ("[api]\n", "[api]\nretries = 3\n", r"api.retries: Extra inputs are not permitted"),
    ("read_seconds = 2", 'read_seconds = "fast"', r"timeouts.read_seconds: Input should be a valid number"),
    ("[thresholds]\n", "[thresholds]\nerror_rate_max = 5\n", r"thresholds.error_rate_max: Input should be less than or equal to 1 \(got 5\)"),
    ('service = "entmoot-api"', 'service = "entmoot-api"\nmin_count = 9\nmax_count = 4', r"ecs: Value error, min_count 9 exceeds max_count 4"),
    ('secret = "env:ENTMOOT_SANDBOX_API_TOKEN"', 'secret = "hunter2-literal-token"', r"api.auth.secret: a literal value is not accepted here"),
    ("[rds]\n", "[rds\n", r"not valid TOML"),
    # Strict: TOML has booleans and numbers; a string that looks like one is a mistake, not a value to guess.
    ("production = false", 'production = "no"', r"production: Input should be a valid boolean"),
    ("production = false", "production = 1", r"production: Input should be a valid boolean \(got 1\)"),
    ("read_seconds = 2", 'read_seconds = "10"', r"timeouts.read_seconds: Input should be a valid number"),
    ('url = "env:ENTMOOT_SANDBOX_API_URL"', 'url = "not a url"', r"api.url: Value error, not a URL \(http\|https\|redis\|rediss\|unix://host\[:port\]\)"),
    ('url = "env:ENTMOOT_SANDBOX_API_URL"', 'url = "https://api.internal:port"', r"api.url: Value error, not a URL: Port could not be cast"),
]


# Every mistake takes one way to the user (ConfigError, which the plugin turns into pytest's usage error), whatever the
# mistake: a real `pytest checks/` for one of each kind (TOML that does not parse, a key pydantic refuses, a check of the
# suite's own), the line itself for every mistake above.
IN_A_REAL_RUN = {"bad-toml", "unknown-key", "literal-secret"}


@pytest.mark.parametrize("old,new,message", MISTAKES, ids=["unknown-key", "wrong-type", "impossible-value",
                                                          "inconsistent", "literal-secret", "bad-toml", "string-boolean",
                                                          "number-boolean", "string-number", "not-a-url", "bad-port"])
def test_mistake_is_one_line_with_usage_exit_code(old, new, message, environments, request):
    directory = environments(replace={old: new})
    with pytest.raises(ConfigError, match=message) as raised:
        load_environment("sandbox", directory)
    # What pytest prints after "ERROR: " (entmoot_ops.pytest_plugin.environments): one line, naming the file.
    said = str(raised.value).strip()
    assert "\n" not in said and said.startswith(f"{directory / 'sandbox.toml'}: "), said
    if request.node.callspec.id not in IN_A_REAL_RUN:
        return
    completed = subprocess.run([sys.executable, "-m", "pytest", "checks/", "-m", "morning", "--environments-dir", str(directory)],
                               cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 4
    errors = [line for line in (completed.stdout + completed.stderr).splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("ERROR: ") and "sandbox.toml" in errors[0], errors
    assert "Traceback" not in completed.stderr


TWO_MISTAKES = {"production = false": 'production = "yes"', 'url = "env:ENTMOOT_SANDBOX_API_URL"': 'url = "not a url"'}


@pytest.mark.parametrize("command", [
    ["pytest", "checks/", "-m", "morning"],
    ["entmoot_ops.cli", "iam-policy", "check"],
    ["entmoot_ops.cli", "scale", "--to", "2", "--dry-run"],
    ["entmoot_ops.cli", "chaos", "list"],
    ["entmoot_ops.cli", "chaos", "gameday"],
], ids=["pytest", "iam-policy", "scale", "chaos-list", "chaos-gameday"])
def test_every_mistake_of_a_file_is_named_at_once(command, environments):
    """Two mistakes in one file: both named, one line each under the file, wherever the file is read."""
    directory = environments(replace=TWO_MISTAKES)
    completed = subprocess.run([sys.executable, "-m", *command, "--environments-dir", str(directory)],
                               cwd=ROOT, capture_output=True, text=True, timeout=60)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 4, output
    assert "Traceback" not in output and "more)" not in output
    lines = [line for line in output.splitlines() if line.strip()]
    assert re.search(r"sandbox\.toml: 2 mistakes", lines[0]), lines
    assert lines[1:] == ["  production: Input should be a valid boolean",
                         "  api.url: Value error, not a URL (http|https|redis|rediss|unix://host[:port]) nor an env:NAME reference"], lines


def test_unknown_environment_names_the_known_ones():
    completed = subprocess.run([sys.executable, "-m", "pytest", "checks/", "--env", "production"], cwd=ROOT,
                               capture_output=True, text=True, timeout=60)
    assert completed.returncode == 4
    assert "no such environment 'production' (known: prod, sandbox, staging)" in completed.stderr


def test_missing_secret_variable_is_said_once_and_its_checks_point_there(run_checks, environments):
    directory = environments(replace={'secret = "env:ENTMOOT_SANDBOX_API_TOKEN"': 'secret = "env:ENTMOOT_NO_SUCH_TOKEN"'})
    run = run_checks("-m", "morning", "-k", "api_health or auth_enforced or ecs", "--environments-dir", str(directory))
    assert run.outcome("api.health") == "error"
    assert run.result("api.health").message == "preflight [sandbox] failed for api.auth.secret: see that line"
    preflight = [line for line in run.output.splitlines() if line.startswith("preflight [sandbox]")]
    assert preflight and set(preflight) == {"preflight [sandbox] FAILED (1):"}
    assert "\n  - api.auth.secret: ENTMOOT_NO_SUCH_TOKEN is not set -> export ENTMOOT_NO_SUCH_TOKEN" in run.output
    assert "fix: \n" not in run.output and not re.search(r"fix:\s*$", run.output, re.M)  # no empty fix lines
    assert len(preflight) <= 2  # at the start of the run and above the closing line; not once per check
    assert run.outcome("ecs.service-steady") == "pass"  # what does not need the token is still measured


def test_wrong_redis_password_is_an_error_not_a_pass(run_checks, environments, monkeypatch):
    directory = environments(replace={'password = "env:ENTMOOT_SANDBOX_REDIS_PASSWORD"': 'password = "env:WRONG_REDIS_PASSWORD"'})
    run = run_checks("-m", "morning", "-k", "redis_reachable", "--environments-dir", str(directory),
                     env={"WRONG_REDIS_PASSWORD": "definitely-not-it"})
    assert run.outcome("redis.reachable") == "error"
    assert "Redis" in run.result("redis.reachable").message
    assert "WRONGPASS" in run.result("redis.reachable").message or "invalid" in run.result("redis.reachable").message


def test_no_selected_check_is_not_a_silent_pass(run_checks):
    run = run_checks("-m", "monthly", "-k", "no_such_check")
    assert run.returncode == 4
    assert "-k 'no_such_check' selects no check: nothing was started or verified" in run.output


def test_a_template_copied_as_is_names_its_placeholder_hosts_and_asks_none_of_them(tmp_path):
    """staging.toml copied and run with no credentials: each problem on a line of the preflight, every check an ERROR
    pointing there, and no check resolves a placeholder host (not even a DNS query leaves the machine)."""
    environments = tmp_path / "environments"
    environments.mkdir()
    (environments / "staging.toml").write_text((ROOT / "environments" / "staging.toml").read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ENTMOOT_"))}
    env |= {"AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
            "AWS_EC2_METADATA_DISABLED": "true", "HOME": str(tmp_path)}
    completed = subprocess.run([sys.executable, "-m", "pytest", "checks/", "-m", "morning", "--env", "staging",
                                "--environments-dir", str(environments), "--reports-dir", str(tmp_path / "reports")],
                               cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 1, output[-3000:]
    assert "  - api.url: api-staging.yourdomain.com is a placeholder host -> write the environment's real endpoint" in output
    assert "  - redis.url: entmoot-redis-staging.xxxxxxxxxxxx.cache.amazonaws.com is a placeholder host" in output
    assert "  - aws.credentials: none found" in output
    assert "Failed to resolve" not in output and "Name or service not known" not in output and "unreachable" not in output
    assert "PASS " not in output and "FAIL " not in output
    assert max(len(line) for line in output.splitlines()) < 300
