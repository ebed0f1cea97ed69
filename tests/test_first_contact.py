"""First contact with a real environment, as a new user meets it: the shipped templates copied as they are, no
credentials, a typo, a literal secret, a stale sandbox. Each ends in one clear line, within its timeout, with
no secret printed and no traceback.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from conftest import ROOT, parse_junit

NO_CREDENTIALS = {"AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
                  "AWS_EC2_METADATA_DISABLED": "true"}


def _pytest(args: list[str], tmp_path: Path, env: dict[str, str] | None = None, timeout: float = 120):
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ENTMOOT_"))}
    environment.update({"XDG_STATE_HOME": str(tmp_path / "state"), **NO_CREDENTIALS, **(env or {})})
    return subprocess.run([sys.executable, "-m", "pytest", "checks/", "--reports-dir", str(tmp_path / "reports"), *args],
                          cwd=ROOT, env=environment, capture_output=True, text=True, timeout=timeout)


def _templates(tmp_path: Path) -> Path:
    directory = tmp_path / "environments"
    directory.mkdir()
    for name in ("staging", "prod"):
        shutil.copy(ROOT / "environments" / f"{name}.toml", directory / f"{name}.toml")
    return directory


def test_shipped_templates_without_credentials_end_in_one_line_per_environment(tmp_path):
    """Before: INTERNALERROR (NotSetType is not JSON serializable) and 14-17 copies of the same error."""
    completed = _pytest(["-m", "morning", "--env", "staging", "--env", "prod", "--environments-dir", str(_templates(tmp_path))],
                        tmp_path)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 1, output[-3000:]
    assert "INTERNALERROR" not in output and "Traceback" not in output
    assert "entmoot checks" in output
    for env, prefix in (("staging", "ENTMOOT_STAGING"), ("prod", "ENTMOOT_PROD")):
        lines = {line for line in output.splitlines() if line.startswith(f"preflight [{env}]")}
        assert lines == {f"preflight [{env}] FAILED (6):"}, lines
        # One line per problem under it, each naming its key and what to do.
        block = output.split(f"preflight [{env}] FAILED (6):", 1)[1].split("\n\n", 1)[0]
        for variable in (f"{prefix}_API_TOKEN", f"{prefix}_PG_DSN", f"{prefix}_REDIS_AUTH_TOKEN"):
            assert f"is not set -> export {variable}" in block, block
        assert f"{prefix}_PG_REMEDIATOR_DSN" not in block  # needed by --remediate only
        assert "aws.credentials: none found" in block and "AWS_PROFILE" in block
        assert "is a placeholder host -> write the environment's real endpoint" in block
    results = parse_junit(tmp_path / "reports" / "junit.xml")
    skipped = [r for r in results if r.outcome == "skip"]
    # RDS environments have no PostgreSQL replicas to name: said once per environment, as a skip with the reason.
    assert {r.check_id for r in skipped} == {"replication.streaming"} and len(skipped) == 2
    assert all("no replica configured" in r.message for r in skipped)
    errors = [r for r in results if r.outcome == "error"]
    assert len(errors) == len(results) - 2
    # Every check points at the preflight: none asks a placeholder host, not even the anonymous request of
    # api.auth-enforced, which needs no secret (it used to resolve api.yourdomain.com).
    assert all(re.fullmatch(r"preflight \[(staging|prod)\] failed for [a-z._]+: see that line", r.message) for r in errors), errors
    assert "Failed to resolve" not in output
    assert all(r.junit == "error" for r in errors)
    assert re.search(r"\d+ skipped, \d+ deselected, \d+ errors in", output.splitlines()[-1]), output.splitlines()[-1]


def test_could_not_measure_is_an_error_in_pytest_and_junit_not_a_failure(tmp_path):
    completed = _pytest(["-m", "morning", "--env", "staging", "-k", "api_health", "--environments-dir", str(_templates(tmp_path))],
                        tmp_path)
    assert re.search(r"^checks/test_api.py E\b", completed.stdout, re.MULTILINE), completed.stdout
    case = next(ET.parse(tmp_path / "reports" / "junit.xml").getroot().iter("testcase"))
    assert case.find("error") is not None and case.find("failure") is None
    row = next(line for line in completed.stdout.splitlines() if line.startswith("ERROR    api.health"))
    assert "remediation" not in row  # an error names what to fix, not a remediation


def test_literal_secret_in_a_file_is_refused_without_printing_it(tmp_path):
    directory = _templates(tmp_path)
    path = directory / "staging.toml"
    path.write_text(path.read_text().replace('"env:ENTMOOT_STAGING_PG_DSN"', '"postgres://u:hunter2pass@h/db"'))
    completed = _pytest(["-m", "morning", "--env", "staging", "--environments-dir", str(directory)], tmp_path)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 4
    assert "hunter2pass" not in output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and "postgres.primary_dsn: a literal value is not accepted here" in lines[0], lines


def test_a_misspelt_marker_is_refused_with_the_closest_checklist(tmp_path):
    completed = _pytest(["-m", "mornin"], tmp_path)
    assert completed.returncode == 4
    assert "-m: no checklist or component 'mornin' (did you mean morning?)" in completed.stderr
    assert "expected-version" not in completed.stderr


def test_a_stale_sandbox_state_is_said_once(tmp_path):
    completed = _pytest(["-m", "morning"], tmp_path, env={"ENTMOOT_SANDBOX_STATE": str(tmp_path / "gone.json")})
    output = completed.stdout + completed.stderr
    assert completed.returncode == 1
    assert "Traceback" not in output
    mentions = [line for line in output.splitlines() if "gone.json" in line]
    assert 1 <= len(mentions) <= 2, mentions  # the preflight line, at the start and above the closing line
    assert "preflight [sandbox] FAILED: sandbox:" in mentions[0] and "entmoot-ops sandbox up" in mentions[0]
    assert all(r.message == "preflight [sandbox] failed for sandbox: see that line"
               for r in parse_junit(tmp_path / "reports" / "junit.xml"))
