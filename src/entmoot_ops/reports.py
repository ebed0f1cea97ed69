"""Allure: labels and links per check, remediation steps, categories, environment properties, executor."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import allure
import pytest

from entmoot_ops.check import CHECKLISTS, CheckSpec
from entmoot_ops.config import Environment
from entmoot_ops.errors import ConfigError, OpsError
from entmoot_ops import progress
from entmoot_ops.remediation import Change, Remediation, describe_changes
from entmoot_ops.runbook import SECTIONS, link
from entmoot_ops.secrets import masker

# Allure sorts failed and broken results into these by status and message.
CATEGORIES = [
    {"name": "Threshold breached", "matchedStatuses": ["failed"]},
    {"name": "Dependency unreachable", "matchedStatuses": ["broken"], "messageRegex": ".*(DependencyError|unreachable).*"},
    {"name": "Misconfigured", "matchedStatuses": ["broken"], "messageRegex": ".*(ConfigError|not set|not configured|ReadOnlyViolation).*"},
    {"name": "No data to judge", "matchedStatuses": ["broken", "skipped"], "messageRegex": ".*(no data|too little).*"},
]


def label(item: pytest.Item, spec: CheckSpec, environment: Environment | None) -> None:
    allure.dynamic.title(f"{spec.title} [{environment.name if environment else '?'}]")
    allure.dynamic.severity({"critical": "critical", "high": "critical", "medium": "normal", "low": "minor"}[spec.severity])
    allure.dynamic.label("check_id", spec.id)
    allure.dynamic.label("remediation", spec.remediation)
    allure.dynamic.feature(SECTIONS[spec.section])
    if environment is not None:
        allure.dynamic.parent_suite(environment.name)
        allure.dynamic.link(link(environment.runbook_url, spec.section), name=f"runbook: {SECTIONS[spec.section]}")
    for name in CHECKLISTS:
        if item.get_closest_marker(name):
            allure.dynamic.tag(name)


def attach_plan(remediation: Remediation, plan: list[str]) -> None:
    with allure.step(f"Remediation plan: {remediation.id} — {remediation.title}"):
        allure.attach(masker("\n".join(plan)), name="plan", attachment_type=allure.attachment_type.TEXT)


def attach_changes(changes: list[Change]) -> None:
    with allure.step("Remediation executed"):
        allure.attach(masker(json.dumps(describe_changes(changes), default=str, indent=2)), name="changes",
                      attachment_type=allure.attachment_type.JSON)


def write_allure_metadata(results_dir: Path, environments: Iterable[Environment]) -> None:
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "categories.json").write_text(json.dumps(CATEGORIES, indent=2))
    lines = []
    for env in environments:
        lines += [f"{env.name}.kind={env.kind}", f"{env.name}.region={env.aws.region}",
                  f"{env.name}.ecs={env.ecs.cluster}/{env.ecs.service}", f"{env.name}.rds={env.rds.instance}"]
    lines.append(f"python={platform.python_version()}")
    (results_dir / "environment.properties").write_text("\n".join(lines) + "\n")
    executor = {"name": os.environ.get("CI_NAME", "entmoot-ops"), "type": "pytest",
                "buildName": os.environ.get("GITHUB_RUN_ID", ""), "buildUrl": os.environ.get("BUILD_URL", "")}
    (results_dir / "executor.json").write_text(json.dumps(executor))


def generate_html(results_dir: Path, output_dir: Path, tools_dir: Path, history_dir: Path) -> Path:
    """Allure 2 HTML from the npm package allure-commandline (installed once into ``tools_dir``): one
    self-contained file that opens from disk (``file://``) with no request leaving the machine, whose trend
    covers the earlier runs kept in ``history_dir``."""
    if not results_dir.is_dir() or not any(results_dir.glob("*-result.json")):
        raise OpsError(f"{results_dir}: no Allure results; run the checks first")
    allure_bin = _allure(tools_dir)
    environment = {**os.environ, "ALLURE_NO_ANALYTICS": "true"}  # the page would load an analytics script
    if history_dir.is_dir():
        shutil.copytree(history_dir, results_dir / "history", dirs_exist_ok=True)
    # The single-file page keeps no history of its own: a multi-file generation computes the next history.
    with tempfile.TemporaryDirectory(prefix="allure-") as work:
        _run([str(allure_bin), "generate", str(results_dir), "-o", work, "--clean"], "computing the report's history", environment)
        shutil.rmtree(history_dir, ignore_errors=True)
        shutil.copytree(Path(work) / "history", history_dir)
    _run([str(allure_bin), "generate", str(results_dir), "-o", str(output_dir), "--clean", "--single-file"],
         "generating the single-file report", environment)
    return output_dir / "index.html"


def _allure(tools_dir: Path) -> Path:
    allure_bin = tools_dir / "node_modules" / ".bin" / "allure"
    if allure_bin.exists():
        return allure_bin
    if shutil.which("npm") is None:
        raise ConfigError("npm is not installed: it is needed once to fetch allure-commandline",
                          fix="install Node.js and npm (and Java 17 for Allure 2)")
    if shutil.which("java") is None:
        raise ConfigError("java is not installed: Allure 2's generator runs on Java", fix="install a Java 17 runtime")
    _run(["npm", "install", "--no-fund", "--no-audit", "--prefix", str(tools_dir), "allure-commandline@2"],
         f"installing allure-commandline into {tools_dir} (once)", os.environ)
    return allure_bin


def _run(argv: list[str], what: str, environment: dict[str, str] | os._Environ) -> None:
    """A command that may take a while: progress every few seconds, its own output only when it fails."""
    progress.write(f"{what} ...")
    tick = progress.Progress(what)
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT, env=environment)
        while process.poll() is None:
            tick("still running")
            time.sleep(0.2)
        if process.returncode != 0:
            output.seek(0)
            tail = output.read().decode(errors="replace").strip().splitlines()[-3:]
            raise ConfigError(f"{argv[0].rsplit('/', 1)[-1]} {argv[1]} failed ({process.returncode}): {' | '.join(tail)}",
                              fix="behind a proxy or a private CA, export HTTPS_PROXY / NODE_EXTRA_CA_CERTS (tox passes them)")
