"""entmoot-ops as a person uses it: a sandbox that returns once it is up and stays until `down`; a scale that
refuses, in one line, to act on a sandbox nobody started."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time

from conftest import ROOT


def _ops(*args: str, state_home, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ENTMOOT_")}
    environment.update({"XDG_STATE_HOME": str(state_home), **(env or {})})
    return subprocess.run([sys.executable, "-m", "entmoot_ops.cli", *args], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=timeout)


def test_sandbox_up_env_status_down(tmp_path):
    state_home = tmp_path / "state"
    assert _ops("sandbox", "status", state_home=state_home).stdout.strip() == "sandbox: not running"
    started = time.monotonic()
    up = _ops("sandbox", "up", state_home=state_home)
    try:
        assert up.returncode == 0, up.stderr
        assert time.monotonic() - started < 60  # it returned: the sandbox lives on without this process
        assert "sandbox ready in" in up.stdout and 'eval "$(entmoot-ops sandbox env)"' in up.stdout
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
    finally:
        down = _ops("sandbox", "down", state_home=state_home)
    assert down.returncode == 0 and down.stdout.startswith("sandbox stopped")
    assert _ops("sandbox", "status", state_home=state_home).returncode == 1
    assert _ops("sandbox", "down", state_home=state_home).stdout.strip() == "sandbox: not running; nothing to stop"


def test_scale_on_the_sandbox_with_none_running_refuses_in_one_line(tmp_path):
    result = _ops("scale", "--env", "sandbox", "--out", "--audit-log", str(tmp_path / "audit.jsonl"), state_home=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "entmoot-ops: no sandbox is running (start one with `entmoot-ops sandbox up`)"
    assert not (tmp_path / "audit.jsonl").exists()


def test_sandbox_env_with_none_running_is_one_line(tmp_path):
    result = _ops("sandbox", "env", state_home=tmp_path)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "does not exist" in result.stderr and "entmoot-ops sandbox up" in result.stderr
