"""Every command the README shows in its command blocks runs, as a user types it, in the README's order.

The checks and the catalogue commands run against this worker's sandbox; the "sandbox on its own" commands (up,
env, status, faults, traffic, down) against a sandbox of their own, which ``up`` starts and ``down`` stops. A command
the README shows that a test cannot run here is named in NOT_RUN with the reason, and a test keeps that list true.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(r"^```(?:bash|sh|shell)\n(.*?)^```", re.S | re.M)
NOT_RUN = {
    "python3 -m pip install tox && tox -e morning": "the quick start: .ci/run installs tox and runs tox on a clean clone",
    "bash .ci/run": "the run these tests are part of",
    "entmoot-ops scale --env staging --out": "staging's ECS service, with staging's credentials",
    "entmoot-ops scale --env prod --to 8 --yes": "production's ECS service",
    "entmoot-ops scale --env prod --to 8 --dry-run": "production's credentials (tests/test_credential_sources.py runs it without)",
    "export ENTMOOT_LOAD_PLAN='{\"users\": 200, \"spawn_rate\": 20, \"duration_seconds\": 300}'":
        "locust's master and workers on several machines (tests/test_load.py runs them on loopback)",
    "export ENTMOOT_LOAD_AUTH_HEADER=Authorization ENTMOOT_LOAD_AUTH_VALUE=\"Bearer $API_TOKEN\"": "as above",
    "locust -f load/entmoot.py --master --expect-workers 2 --headless --host \"$API_URL\" --csv reports/load/distributed":
        "as above",
    "locust -f load/entmoot.py --worker --master-host MASTER_HOST": "as above: MASTER_HOST is another machine",
    "pytest checks/ -m chaos --env staging --yes": "staging's chaos experiments",
    "entmoot-ops chaos gameday --env sandbox --experiments slow-redis,kill-replica,flush-cache":
        "three experiments in a row, minutes long: tests/test_experiment_files.py runs game days end to end",
    "entmoot-ops chaos matrix": "12 to 16 minutes on 2 cores: bench/chaos_matrix.py runs it, its figures are the performance page's",
}
# What the README runs for a minute, here for seconds: the same command, bounded shorter.
SHORTER = {"--seconds 60": "--seconds 2"}


def readme_commands() -> list[str]:
    """Each line of the documents' shell blocks that is a command (not a comment, not output), trailing comment cut."""
    found = []
    for document in DOCUMENTS:
        for block in BLOCK.findall(document.read_text(encoding="utf-8")):
            for line in block.splitlines():
                command = re.sub(r"\s+#\s.*$", "", line).strip()
                if command and not command.startswith("#"):
                    found.append(command)
    return found


def test_every_command_the_readme_does_not_run_says_why_and_is_still_there():
    commands = readme_commands()
    assert commands, "no command block found"
    assert not set(NOT_RUN) - set(commands), "NOT_RUN names commands the README no longer shows: " + repr(set(NOT_RUN) - set(commands))


def _shell(command: str, environment: dict[str, str]) -> subprocess.CompletedProcess:
    for long, short in SHORTER.items():
        command = command.replace(long, short)
    return subprocess.run(["bash", "-c", command], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300)


def test_every_command_of_the_readme_runs(sandbox, tmp_path):
    """Exit 0 and no traceback, each; the sandbox the README starts is stopped by the README's own `down`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("ENTMOOT_")}
    base["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{base.get('PATH', '')}"  # pytest, entmoot-ops, locust
    on_worker = base | {"ENTMOOT_SANDBOX_STATE": str(sandbox.state_file)}
    # A HOME of its own: `entmoot-ops sandbox up` starts the README's sandbox there, `down` stops it.
    on_its_own = base | {"HOME": str(tmp_path / "home"), "XDG_STATE_HOME": str(tmp_path / "state")}
    failed, ran = [], []
    try:
        for command in readme_commands():
            if command in NOT_RUN:
                continue
            own = re.search(r"\bentmoot-ops sandbox\b", command) is not None
            result = _shell(command, on_its_own if own else on_worker)
            ran.append(command)
            output = result.stdout + result.stderr
            if result.returncode != 0 or "Traceback" in output:
                failed.append(f"{command}\n  exit {result.returncode}: {output[-1500:]}")
    finally:
        _shell("entmoot-ops sandbox down", on_its_own)  # whatever failed before the README's own `down`
    assert not failed, "\n".join(failed)
    assert "entmoot-ops sandbox up" in ran and "entmoot-ops sandbox down" in ran and len(ran) >= 10, ran
