"""Every command the README and the pages of docs/ show in their command blocks runs, as a user types it, in their
order (the README, then the pages by name).

The checks and the catalogue commands run here, against this worker's sandbox; the "sandbox on its own" commands
(env, status, faults, traffic) of docs/sandbox.md in tests/test_cli.py::test_sandbox_up_env_status_down, against the
sandbox that its ``entmoot-ops sandbox up`` starts and its ``down`` stops. A command the documents show that a test
cannot run here is named in NOT_RUN with the reason, and a test keeps that list true.
"""

from __future__ import annotations

import pytest

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
    'pytest tests/ -m "not e2e" -n 5': "the project's own tests: a developer's run of them, not a run inside them",
    "pytest tests/test_docs.py": "as above: it is one of the project's tests",
    "mkdocs build --strict": "tests/test_docs.py runs it, into a temporary directory (here it would write site/ into the checkout)",
    "pytest checks/ -m morning --env staging --env prod --shard 1/4 --reports-dir reports/shard-1":
        "staging's and prod's endpoints: tests/test_fleet.py runs shards of a fleet of sandbox environments, and "
        "tests/test_examples.py collects these four shards",
    "pytest checks/ -m morning --env staging --env prod --shard 4/4 --reports-dir reports/shard-4": "as above",
    "entmoot-ops report --merge reports/shard-1 reports/shard-2 reports/shard-3 reports/shard-4 --into reports/fleet":
        "the reports of the shards above: tests/test_fleet.py merges those of its sandbox fleet",
}
NOT_RUN.update({command: "a silence of prod written into the checkout's environments/: tests/test_history.py and "
                "tests/test_history_sandbox.py add, list and expire silences in an environments directory of their own"
                for command in (
                    'entmoot-ops silence add --env prod --check rds.free-storage --until 3d --reason "storage resize booked, CHG-1234"',
                    'entmoot-ops silence add --env prod --check "redis.*" --until 2026-12-10T09:00Z --reason "cache migration" --by alice',
                    'entmoot-ops silence add --env prod --check replication.lag --resource replica2 --until 12h --reason "rebuilding replica2"',
                    "entmoot-ops silence list --env prod", "entmoot-ops silence expire 3f2a9c1e --env prod")})
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
    assert not set(NOT_RUN) - set(commands), "NOT_RUN names commands the documents no longer show: " + repr(set(NOT_RUN) - set(commands))


def on_its_own(command: str) -> bool:
    """A command of the sandbox on its own: it acts on the sandbox ``entmoot-ops sandbox up`` started."""
    return re.search(r"\bentmoot-ops sandbox\b", command) is not None


def user_environment(**extra: str) -> dict[str, str]:
    """A user's shell: no ENTMOOT_ variable of the test session, the project's venv first on the PATH."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("ENTMOOT_")}
    return base | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{base.get('PATH', '')}"} | extra


def run_as_typed(command: str, environment: dict[str, str]) -> str | None:
    """Run one README line in bash; None when it worked (exit 0, no traceback), else what went wrong."""
    for long, short in SHORTER.items():
        command = command.replace(long, short)
    result = subprocess.run(["bash", "-c", command], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    return None if result.returncode == 0 and "Traceback" not in output else f"{command}\n  exit {result.returncode}: {output[-1500:]}"


@pytest.mark.e2e
def test_every_command_of_the_readme_runs(sandbox):
    environment = user_environment(ENTMOOT_SANDBOX_STATE=str(sandbox.state_file))
    ran = [command for command in readme_commands() if command not in NOT_RUN and not on_its_own(command)]
    failed = [problem for problem in (run_as_typed(command, environment) for command in ran) if problem]
    assert not failed, "\n".join(failed)
    assert len(ran) >= 8, ran
