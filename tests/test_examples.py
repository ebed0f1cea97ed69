"""The fleet's examples (examples/): valid against their platforms' own schemas, offline, and their commands are the
suite's: the shards they run are disjoint and together the whole selection."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import ROOT

KUBERNETES = ROOT / "examples" / "kubernetes" / "fleet-morning.yaml"
GITHUB = ROOT / "examples" / "github-actions" / "fleet-morning.yml"


def test_the_kubernetes_manifest_is_valid_against_kubernetes_schemas():
    done = subprocess.run([sys.executable, "-m", "kubernetes_validate", "--strict", str(KUBERNETES)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("passed for resource") == 4


def test_the_github_workflow_is_valid_against_its_schema():
    done = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", str(GITHUB)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def _pytest_commands() -> dict[str, str]:
    cronjob = next(d for d in yaml.safe_load_all(KUBERNETES.read_text()) if d["metadata"]["name"] == "entmoot-morning")
    container = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    workflow = yaml.safe_load(GITHUB.read_text())
    step = next(s["run"] for s in workflow["jobs"]["shard"]["steps"] if s.get("run", "").startswith("pytest"))
    return {"kubernetes": container["args"][0], "github": step}


def _filled(command: str, index: int, reports: Path) -> str:
    """A shard's command as its platform runs it: the shard's index, the Job's name, and the shipped environments."""
    command = re.sub(r"--environments-dir \S+", f"--environments-dir {ROOT / 'environments'}", command)
    command = re.sub(r"\$\(\(JOB_COMPLETION_INDEX \+ 1\)\)", str(index + 1), command)
    command = command.replace("${{ matrix.shard }}", str(index + 1)).replace("$JOB_COMPLETION_INDEX", str(index))
    return command.replace("$JOB_NAME", "entmoot-morning-1").replace("/reports/", f"{reports}/").replace("reports/shard", f"{reports}/shard")


def test_the_shards_the_examples_run_are_the_whole_selection(tmp_path):
    """Both examples run the same four shards (their commands filled in as each platform does); collected, the four
    together select every check of the unsharded selection, each once."""
    commands = _pytest_commands()
    shards = 4
    for index in range(shards):
        kubernetes, github = (_filled(commands[platform], index, tmp_path).split(" --reports-dir ")[0] for platform in ("kubernetes", "github"))
        assert kubernetes == github
    selected: list[list[str]] = []
    for index in range(shards):
        done = subprocess.run(f"{_filled(commands['kubernetes'], index, tmp_path)} --collect-only -q", shell=True, cwd=ROOT,
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
        assert done.returncode == 0, done.stdout + done.stderr
        selected.append([line for line in done.stdout.splitlines() if "::" in line])
    whole = subprocess.run([sys.executable, "-m", "pytest", "checks/", "-m", "morning", "--environments-dir", str(ROOT / "environments"),
                            "--env", "staging", "--env", "prod", "--collect-only", "-q"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    expected = [line for line in whole.stdout.splitlines() if "::" in line]
    assert sorted(sum(selected, [])) == sorted(expected)
    assert all(selected)  # four shards of two environments: each environment's check groups are spread
