"""Allure: labels and links per check, remediation steps, categories, environment properties, executor."""

from __future__ import annotations

import fcntl
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterable
from datetime import datetime, UTC
from pathlib import Path
from typing import Any

import allure
import pytest

from entmoot_ops.check import CHECKLISTS, CheckSpec, Fixed
from entmoot_ops.config import Environment
from entmoot_ops.errors import ConfigError, OpsError, one_line
from entmoot_ops import progress
from entmoot_ops.results import OUTCOMES, CheckResult
from entmoot_ops.remediation import Change, Remediation, describe_changes
from entmoot_ops.runbook import SECTIONS, link
from entmoot_ops.secrets import masker

# Allure sorts failed and broken results into these by status and message.
CATEGORIES = [
    {"name": "Fixed by a remediation (something was wrong)", "matchedStatuses": ["failed"], "messageRegex": "(?s)FIXED .*"},
    {"name": "Threshold breached", "matchedStatuses": ["failed"]},
    {"name": "Misconfigured", "matchedStatuses": ["broken"],
     "messageRegex": "(?s).*(preflight|not set|not configured|placeholder|check mode refused|api\\.auth).*"},
    # Before "No data to judge", which matches skipped results too: a silenced one is silenced first.
    {"name": "Silenced: a known problem, until the silence ends", "matchedStatuses": ["skipped"], "messageRegex": "(?s)SILENCED .*"},
    {"name": "Access denied or throttled", "matchedStatuses": ["broken"], "messageRegex": "(?s).*(denied|throttled).*"},
    {"name": "Dependency unreachable or answering nonsense", "matchedStatuses": ["broken"],
     "messageRegex": "(?s).*(unreachable|refused the request|unexpected answer).*"},
    {"name": "No data to judge", "matchedStatuses": ["broken", "skipped"], "messageRegex": ".*(no data|too little).*"},
]


def label(item: pytest.Item, spec: CheckSpec, environment: Environment | None) -> None:
    # The check id first: the title an incident review searches for is the id the terminal and junit show.
    allure.dynamic.title(f"{spec.id}: {spec.title} [{environment.name if environment else '?'}]")
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


def verdict_line(error: BaseException) -> str:
    """The result's message as the terminal says it: no Python class name, and for an error what to fix."""
    if isinstance(error, OpsError):
        return masker(f"{error}" + (f"\n-> fix: {error.fix}" if error.fix else ""))
    if isinstance(error, AssertionError):
        return masker(("FIXED " if isinstance(error, Fixed) else "") + str(error))
    return masker(one_line(error))


class AllureVerdicts:
    """Allure writes a result's message as ``module.Class: text``. Outermost around makereport, so that Allure has
    made the result: its message becomes the verdict line, with the fix for a broken one."""

    @pytest.hookimpl(hookwrapper=True, tryfirst=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        yield
        listener = item.config.pluginmanager.get_plugin("allure_listener")
        if listener is None or call.when == "teardown" or item.get_closest_marker("check") is None:
            return
        result = listener.allure_logger.get_test(listener._cache.get(item.nodeid))
        if result is None:
            return
        if call.excinfo is not None and result.statusDetails is not None:
            result.statusDetails.message = verdict_line(call.excinfo.value)
        remembered = CheckResult.from_properties(item.user_properties)
        if remembered is not None:
            _said_by_memory(result, remembered)


def _said_by_memory(result: Any, remembered: CheckResult) -> None:
    """What the on-call's memory says of a check, in its Allure result: a silenced failure as skipped with its
    verdict and silence (never as a pass), its change since the last run and flapping as tags, a WARN's forecast."""
    from allure_commons.model2 import Label, StatusDetails

    if remembered.outcome == "silenced":
        result.status = "skipped"
        result.statusDetails = StatusDetails(message=masker(f"SILENCED {remembered.finding or remembered.message}; "
                                                            f"{remembered.silence.get('said', '')}"))
    tags = [remembered.change, "flapping" if remembered.flapping else "", "warn" if remembered.warning else ""]
    result.labels += [Label(name="tag", value=tag) for tag in tags if tag]
    if remembered.warning:
        result.description = masker(remembered.warning)
        if result.statusDetails is None:
            result.statusDetails = StatusDetails(message=masker(remembered.warning))


def attach_plan(remediation: Remediation, plan: list[str]) -> None:
    with allure.step(f"Remediation plan: {remediation.id} — {remediation.title}"):
        allure.attach(masker("\n".join(plan)), name="plan", attachment_type=allure.attachment_type.TEXT)


def attach_changes(changes: list[Change]) -> None:
    with allure.step("Remediation executed"):
        allure.attach(masker.dumps(describe_changes(changes), indent=2), name="changes",
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


def write_summary_json(path: Path, results: Iterable[CheckResult], *, marker: str, wall_seconds: float,
                       run: dict | None = None) -> Path:
    """The run for other tools: per check its outcome, reading, threshold and remediation state (summary.json).
    ``run``: what the run was (its selection, environments and shard), which a fleet's merge compares."""
    results = list(results)
    summary = {
        "finished": datetime.now(UTC).isoformat(timespec="seconds"), "marker": marker, "wall_seconds": round(wall_seconds, 3),
        "run": run or {},
        "counts": {outcome: sum(1 for r in results if r.outcome == outcome) for outcome in OUTCOMES},
        "changes": {change: sum(1 for r in results if r.change == change) for change in ("new", "still", "resolved")}
        | {"flapping": sum(1 for r in results if r.flapping), "warn": sum(1 for r in results if r.warning)},
        "checks": [{"id": r.check_id, "environment": r.env, "title": r.title, "outcome": r.outcome, "severity": r.severity,
                    "measured": r.measured, "threshold": r.threshold, "readings": r.readings, "values": r.values,
                    "message": r.message, "remediation": r.remediation, "remediation_state": r.remediation_state,
                    "plan": r.plan, "done": r.done, "recheck": r.recheck, "runbook": r.section,
                    "evidence": r.evidence, "duration_seconds": r.duration_seconds, "resource": r.resource,
                    "change": r.change, "flapping": r.flapping, "failing_since": r.since, "failing_runs": r.runs,
                    "silence": r.silence, "warning": r.warning, "forecast": r.forecast}
                   for r in sorted(results, key=lambda r: (r.env, r.check_id))],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(masker.dumps(summary, indent=2))
    return path


def write_coverage_result(results_dir: Path, table_html: str, summary: str) -> None:
    """The runbook coverage table as a result of its own in the report (status unknown: it is not a verdict)."""
    write_result(results_dir, "Runbook coverage", "entmoot-ops.runbook-coverage", "unknown", summary,
                 [("runbook coverage", table_html.encode(), "text/html", "html")], suite="runbook coverage")


def write_result(results_dir: Path, name: str, history_id: str, status: str, message: str,
                 attachments: Iterable[tuple[str, bytes, str, str]], *, suite: str) -> None:
    """A result of the suite's own (not a check's) in Allure's results: ``attachments`` as (name, content, MIME
    type, file extension)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    attached = []
    for title, content, mime, extension in attachments:
        source = f"{uuid.uuid4()}-attachment.{extension}"
        (results_dir / source).write_bytes(content)
        attached.append({"name": title, "source": source, "type": mime})
    now = int(time.time() * 1000)
    result = {"uuid": str(uuid.uuid4()), "historyId": history_id, "name": name, "fullName": history_id, "status": status,
              "stage": "finished", "start": now, "stop": now, "statusDetails": {"message": masker(message)},
              "labels": [{"name": "parentSuite", "value": "entmoot-ops"}, {"name": "suite", "value": suite}],
              "attachments": attached}
    (results_dir / f"{result['uuid']}-result.json").write_text(json.dumps(result))


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
    tools_dir.mkdir(parents=True, exist_ok=True)
    # Two reports made at once (a fleet's merge beside a shard's report, on one machine) install it once.
    with (tools_dir / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return allure_bin if allure_bin.exists() else _install_allure(tools_dir, allure_bin)


def _install_allure(tools_dir: Path, allure_bin: Path) -> Path:
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
