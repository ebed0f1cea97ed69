"""The fleet's examples (examples/): valid against their platforms' own schemas, offline, and their commands are the
suite's: the shards they run are disjoint and together the whole selection."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
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


@pytest.mark.parametrize("platform", ["kubernetes", "github"])
def test_the_shards_each_example_runs_are_the_whole_selection(tmp_path, platform):
    """Each shard's command as the example writes it (its index and paths filled in as the platform does), collected:
    the four shards together select every check of the unsharded selection, each once."""
    command = _pytest_commands()[platform].replace("--environments-dir /environments", f"--environments-dir {ROOT / 'environments'}")
    command = command.replace("--environments-dir environments", f"--environments-dir {ROOT / 'environments'}")
    shards = 4
    selected: list[list[str]] = []
    for index in range(shards):
        filled = re.sub(r"\$\(\(JOB_COMPLETION_INDEX \+ 1\)\)", str(index + 1), command)
        filled = filled.replace("${{ matrix.shard }}", str(index + 1)).replace("$JOB_COMPLETION_INDEX", str(index))
        filled = filled.replace("$JOB_NAME", "entmoot-morning-1").replace("/reports/", f"{tmp_path}/reports/")
        done = subprocess.run(f"{filled} --collect-only -q", shell=True, cwd=ROOT, capture_output=True, text=True,
                              timeout=120, env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
        assert done.returncode == 0, done.stdout + done.stderr
        selected.append([line for line in done.stdout.splitlines() if "::" in line])
    whole = subprocess.run([sys.executable, "-m", "pytest", "checks/", "-m", "morning", "--environments-dir", str(ROOT / "environments"),
                            "--env", "staging", "--env", "prod", "--collect-only", "-q"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    expected = [line for line in whole.stdout.splitlines() if "::" in line]
    assert sorted(sum(selected, [])) == sorted(expected)
    assert all(selected)  # four shards of two environments: each environment's check groups are spread
