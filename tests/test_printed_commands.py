"""Every command the suite prints for a person to run works: the re-run of a failed check, the fixes that name a
command, the selections that pytest's -m language allows (checklists and components)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import settle

ROOT = Path(__file__).resolve().parent.parent
# A command in single backquotes inside a message (docstrings use double ones, and are not printed).
# The plugin names the checks' directory as its ini setting entmoot_checks_dir gives it (checks_arg: checks/ here).
PRINTED = re.compile(r"(?<!`)`((?:entmoot-ops|pytest checks/|pytest \{checks_arg\(config\)\})[^`]*)`(?!`)")
MODES = ("check", "remediate", "chaos", "load")
# Each command the suite prints, as the source writes it, and the concrete commands that stand for it here.
RUN_AS = {
    "entmoot-ops iam-policy MODE": [f"entmoot-ops iam-policy {mode}" for mode in MODES],
    "entmoot-ops iam-policy {iam.mode_of(action)}": [f"entmoot-ops iam-policy {mode}" for mode in MODES],
    "entmoot-ops chaos validate": ["entmoot-ops chaos validate"],
    "pytest {checks_arg(config)} --collect-only -q": ["pytest checks/ --collect-only -q"],
    # started, used and stopped by tests/test_readme_commands.py, as the README's "sandbox on its own" shows
    "entmoot-ops sandbox up": [],
    # --shard's help: tests/test_fleet.py merges the shards of a fleet of sandbox environments, and runs what it prints
    "entmoot-ops report --merge DIR...": [],
    "entmoot-ops checks": ["entmoot-ops checks"],
    # a silence's own commands: tests/test_history.py and tests/test_history_sandbox.py add, list and expire silences
    "entmoot-ops silence expire {found.id} --env {env.name}": [],
    "entmoot-ops silence expire {silence.id} --env {env}": [],
    "entmoot-ops silence list --env {env.name} --all": [],
}


def _printed() -> set[str]:
    found = set()
    for path in [*(ROOT / "src").rglob("*.py"), *(ROOT / "remediations").glob("*.py"), *(ROOT / "checks").glob("*.py")]:
        for line in path.read_text(encoding="utf-8").splitlines():
            code = line.split("  # ", 1)[0]
            if not code.lstrip().startswith("#"):
                found.update(PRINTED.findall(code))
    return found


def _run(command: str, home: Path) -> subprocess.CompletedProcess:
    words = shlex.split(command)
    program = [sys.executable, "-m", "pytest"] if words[0] == "pytest" else [sys.executable, "-m", "entmoot_ops.cli"]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ENTMOOT_")} | {"HOME": str(home)}
    return subprocess.run([*program, *words[1:]], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120)


def test_every_command_the_suite_prints_is_known_here():
    """A new hint in a message is a command a person will type: it needs its line in RUN_AS, and so a run below."""
    assert _printed() == set(RUN_AS), "commands printed by the suite without a test: " + repr(_printed() ^ set(RUN_AS))


@pytest.mark.parametrize("command", sorted({c for commands in RUN_AS.values() for c in commands}))
def test_a_printed_command_runs(command, tmp_path):
    result = _run(command, tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_the_re_run_of_a_failed_check_runs_that_check_again(sandbox, run_checks, environments):
    """The plan of a failed check ends with the command that re-runs it alone, as the run ran it: its environments
    directory, its environment. (It said `-k error-rate`, which selects nothing: test names have underscores.)"""
    directory = environments()
    with sandbox.fault("redis_memory_pressure"):
        settle(sandbox)
        failed = run_checks("-m", "morning", "--check", "redis.memory", "--environments-dir", str(directory))
        assert failed.outcome("redis.memory") == "fail", failed.output[-3000:]
        rerun = next(line.split("re-run: ", 1)[1] for line in failed.output.splitlines() if "re-run: " in line)
        assert rerun == f"pytest checks/ --check redis.memory --env sandbox --environments-dir {directory}", rerun
        again = run_checks(*shlex.split(rerun)[2:])
    assert [(r.check_id, r.outcome) for r in again.results] == [("redis.memory", "fail")], again.output[-3000:]


def test_minus_m_takes_checklists_and_components_in_pytest_s_language(tmp_path):
    """`-m "morning and not redis"` (the README's own example) was refused: every word was taken for a checklist."""
    selected = _run('pytest checks/ -m "morning and not redis" --collect-only -q', tmp_path)
    assert selected.returncode == 0, selected.stdout[-2000:] + selected.stderr[-2000:]
    ids = [line for line in selected.stdout.splitlines() if "::" in line]
    morning = [line for line in _run("pytest checks/ -m morning --collect-only -q", tmp_path).stdout.splitlines() if "::" in line]
    assert ids and set(ids) == {i for i in morning if "test_redis.py" not in i}, ids
    components = _run('pytest checks/ -m "redis or rds" --collect-only -q', tmp_path)
    assert components.returncode == 0 and "test_rds.py::" in components.stdout and "test_redis.py::" in components.stdout
