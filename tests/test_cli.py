"""entmoot-ops as a person uses it: a sandbox that returns once it is up and stays until `down`; a scale that
refuses, in one line, to act on a sandbox nobody started."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time

from conftest import ROOT
from test_readme_commands import on_its_own, readme_commands, run_as_typed, user_environment
import pytest

from entmoot_ops.check import CHECKLISTS as ALL_CHECKLISTS

# Every checklist that only reads: load and chaos are actions, run by their own tests.
CHECKLISTS = [name for name in ALL_CHECKLISTS if name not in ("load", "chaos")]


def _ops(*args: str, state_home, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ENTMOOT_")}
    environment.update({"XDG_STATE_HOME": str(state_home), **(env or {})})
    return subprocess.run([sys.executable, "-m", "entmoot_ops.cli", *args], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.e2e
def test_without_postgis_the_sandbox_says_so_and_runs_the_same_spatial_query(tmp_path):
    state_home = tmp_path / "state"
    up = _ops("sandbox", "up", state_home=state_home, env={"ENTMOOT_SANDBOX_POSTGIS": "off"})
    try:
        assert up.returncode == 0, up.stderr
        said = [line for line in up.stderr.splitlines() if "PostGIS" in line]
        assert said == ["PostGIS is not installed (Debian: postgresql-15-postgis-3): buildings.geom is a box, behind SQL "
                        "stand-ins for ST_MakeEnvelope and ST_Intersects"], up.stderr
        run = subprocess.run([sys.executable, "-m", "pytest", "checks/", "-m", "weekly", "--check", "postgres.spatial-index-used",
                              "--reports-dir", str(tmp_path / "reports")], cwd=ROOT, capture_output=True, text=True, timeout=120,
                             env={**os.environ, "ENTMOOT_SANDBOX_STATE": str(state_home / "entmoot-ops" / "sandbox.json")})
        assert run.returncode == 0 and "idx_buildings_location" in run.stdout, run.stdout[-3000:]
    finally:
        _ops("sandbox", "down", state_home=state_home)


@pytest.mark.e2e
def test_sandbox_up_env_status_down(tmp_path):
    state_home = tmp_path / "state"
    assert _ops("sandbox", "status", state_home=state_home).stdout.strip() == "sandbox: not running"
    started = time.monotonic()
    up = _ops("sandbox", "up", state_home=state_home)
    try:
        assert up.returncode == 0, up.stderr
        assert time.monotonic() - started < 60  # it returned: the sandbox lives on without this process
        assert "sandbox ready in" in up.stdout and 'eval "$(entmoot-ops sandbox env)"' in up.stdout
        # Ready means ready: every checklist holds at once, with the history each of its windows reads.
        state_file = state_home / "entmoot-ops" / "sandbox.json"
        every = subprocess.run([sys.executable, "-m", "pytest", "checks/", "-m", f"{' or '.join(CHECKLISTS)}", "--expected-version", "1.4.2",
                                "--reports-dir", str(tmp_path / "reports"), "-p", "no:randomly"], cwd=ROOT, capture_output=True, text=True,
                               timeout=300, env={**os.environ, "ENTMOOT_SANDBOX_STATE": str(state_file)})
        assert every.returncode == 0, every.stdout[-4000:] + every.stderr[-3000:]
        assert not re.search(r"^(ERROR|FAIL|FIXED) ", every.stdout, re.M), every.stdout[-4000:]
        skipped = set(re.findall(r"^SKIP\s+(\S+)", every.stdout, re.M))
        # Skips say why: no cluster mode, statistics younger than 30 days, no traffic yet since the deployment began.
        assert skipped <= {"redis.cluster-state", "postgres.unused-indexes", "deploy.error-rate"}, every.stdout[-4000:]
        # Faults and traffic, as a person drives them from a shell.
        listed = _ops("sandbox", "fault", "list", state_home=state_home)
        assert listed.returncode == 0 and re.search(r"^ +api_errors +A share of the API's requests fail", listed.stdout, re.M)
        injected = _ops("sandbox", "fault", "inject", "api_errors", "rate=1.0", state_home=state_home)
        assert injected.returncode == 0 and 'fault api_errors injected with {"rate": 1.0}' in injected.stdout, injected.stderr
        assert re.search(r"^ACTIVE api_errors", _ops("sandbox", "fault", "list", state_home=state_home).stdout, re.M)
        traffic = _ops("sandbox", "traffic", "--rps", "20", "--seconds", "1", state_home=state_home)
        assert traffic.returncode == 0 and re.search(r"requests sent; answers: \d+ 5xx$", traffic.stdout.strip()), traffic.stdout
        assert _ops("sandbox", "fault", "undo", "api_errors", state_home=state_home).stdout.strip() == "sandbox: fault api_errors undone"
        typo = _ops("sandbox", "fault", "inject", "api_eror", state_home=state_home)
        assert typo.returncode == 4 and "no sandbox fault 'api_eror' (did you mean api_errors" in typo.stderr
        again = _ops("sandbox", "up", state_home=state_home)
        assert again.stdout.startswith("sandbox already running")
        status = _ops("sandbox", "status", state_home=state_home)
        assert status.returncode == 0 and status.stdout.startswith("sandbox: running")
        assert all(f"  {name}" in status.stdout for name in ("api", "primary", "replica", "redis", "aws"))
        exports = _ops("sandbox", "env", state_home=state_home).stdout
        # The exports really are eval-able: a shell that evals them reaches the API with them.
        probe = subprocess.run(["bash", "-c", exports + '\ncurl -s -o /dev/null -w "%{http_code}" -H "Authorization: Bearer $API_TOKEN" '
                                '"$API_URL/api/projects"'], capture_output=True, text=True, timeout=30)
        assert probe.stdout == "200", (probe.stdout, probe.stderr)
        # With no ENTMOOT_SANDBOX_STATE, scale acts on the sandbox that is up.
        state = dict(line[len("export "):].split("=", 1) for line in exports.splitlines() if line.startswith("export "))
        scaled = _ops("scale", "--env", "sandbox", "--to", "4", "--audit-log", str(tmp_path / "audit.jsonl"), state_home=state_home)
        assert scaled.returncode == 0 and "from 3 to 4" in scaled.stdout, scaled.stderr
        assert shlex.split(state["ENTMOOT_SANDBOX_STATE"])[0] == str(state_home / "entmoot-ops" / "sandbox.json")
        # The "sandbox on its own" lines of docs/sandbox.md, as typed, against this sandbox (its up above, its down below).
        shown = [command for command in readme_commands() if on_its_own(command)]
        assert shown[0] == "entmoot-ops sandbox up" and shown[-1] == "entmoot-ops sandbox down", shown
        environment = user_environment(XDG_STATE_HOME=str(state_home))
        failed = [problem for problem in (run_as_typed(command, environment) for command in shown[1:-1]) if problem]
        assert not failed, "\n".join(failed)
    finally:
        down = _ops("sandbox", "down", state_home=state_home)
    assert down.returncode == 0 and down.stdout.startswith("sandbox stopped")
    assert _ops("sandbox", "status", state_home=state_home).returncode == 1
    assert _ops("sandbox", "down", state_home=state_home).stdout.strip() == "sandbox: not running; nothing to stop"


def test_scale_on_the_sandbox_with_none_running_refuses_in_one_line(tmp_path):
    result = _ops("scale", "--env", "sandbox", "--out", "--audit-log", str(tmp_path / "audit.jsonl"), state_home=tmp_path)
    assert result.returncode == 4
    assert result.stderr.strip() == "entmoot-ops: no sandbox is running (start one with `entmoot-ops sandbox up`)"
    assert not (tmp_path / "audit.jsonl").exists()


def test_sandbox_env_with_none_running_is_one_line(tmp_path):
    result = _ops("sandbox", "env", state_home=tmp_path)
    assert result.returncode == 4 and len(result.stderr.strip().splitlines()) == 1
    assert "does not exist" in result.stderr and "entmoot-ops sandbox up" in result.stderr


def test_the_faults_are_listed_with_their_parameters_and_a_wrong_one_is_refused_in_one_line(tmp_path):
    from entmoot_ops.sandbox import faults

    listed = _ops("sandbox", "fault", "list", state_home=tmp_path)  # no sandbox needed to say what there is
    assert listed.returncode == 0, listed.stderr
    described = {name for name, _, _ in re.findall(r"^ {7}(\w+) +(\S.+)\n {34}(\S.+)$", listed.stdout, re.M)}
    assert described == set(faults.FAULTS) and "``" not in listed.stdout, listed.stdout
    assert re.search(r"^ {7}deploy +A release as the user's pipeline makes it.*\n {34}version=1\.5\.0 error_rate=0\.0 latency_ms=0\.0 "
                     r"wait=true$", listed.stdout, re.M), listed.stdout
    for wrong, problem in (("foo=1", "fault deploy has no parameter 'foo'"), ("error_rate=abc", "fault deploy: error_rate='abc' is not float")):
        refused = _ops("sandbox", "fault", "inject", "deploy", wrong, state_home=tmp_path)
        assert refused.returncode == 4 and refused.stderr.count("\n") == 1, refused.stderr
        assert refused.stderr == (f"entmoot-ops: {problem}; its parameters: version=1.5.0 error_rate=0.0 latency_ms=0.0 "
                                  "wait=true\n")
    # Text from a shell becomes the parameter's type; a version stays text even where it reads as a number.
    assert faults.arguments("deploy", {"version": "1.5", "error_rate": "1", "wait": "false"}) == \
        {"version": "1.5", "error_rate": 1.0, "wait": False}
