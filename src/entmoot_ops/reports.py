"""Allure: labels and links per check, remediation steps, categories, environment properties, executor."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

import allure
import pytest

from entmoot_ops.check import CheckSpec
from entmoot_ops.config import Environment
from entmoot_ops.errors import ConfigError
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
    for name in ("morning", "evening", "deploy", "handoff", "incident", "alerts", "weekly", "monthly"):
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


def generate_html(results_dir: Path, output_dir: Path, tools_dir: Path) -> Path:
    """Allure 2 HTML, offline, from the npm package allure-commandline (installed once into ``tools_dir``)."""
    if not results_dir.is_dir() or not any(results_dir.glob("*-result.json")):
        raise ConfigError(f"{results_dir}: no Allure results; run the checks first")
    allure_bin = tools_dir / "node_modules" / ".bin" / "allure"
    if not allure_bin.exists():
        if shutil.which("npm") is None:
            raise ConfigError("npm is not installed: it is needed once to fetch allure-commandline")
        subprocess.run(["npm", "install", "--silent", "--prefix", str(tools_dir), "allure-commandline@2"],
                       check=True, stdout=subprocess.DEVNULL)
    subprocess.run([str(allure_bin), "generate", str(results_dir), "-o", str(output_dir), "--clean"],
                   check=True, stdout=subprocess.DEVNULL)
    return output_dir / "index.html"
