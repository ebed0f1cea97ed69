"""Outcomes of checks: pass, fail (threshold breached), error (could not measure), skip (not judged).

Here a pytest report becomes an outcome, and the run's results become the terminal's summary. What a result is, and
how it travels (junit ``user_properties``, so that under xdist the controller sees what every worker measured), is
:mod:`entmoot_ops.results`, named here too.
"""

from __future__ import annotations

import re
import shutil
import textwrap
from typing import Any

import pytest

# The result record, named here for the plugin and the reports, which take it with the outcomes.
from entmoot_ops.results import ORDER, CheckResult, Outcome, RemediationState


def classify(report: pytest.TestReport, call: pytest.CallInfo[Any], remediation_state: str) -> Outcome:
    if report.skipped:
        return Outcome.SKIP
    if report.passed:
        return Outcome.PASS
    if remediation_state == RemediationState.FIXED:
        return Outcome.FIXED
    if report.when == "call" and call.excinfo is not None and call.excinfo.errisinstance(AssertionError):
        return Outcome.FAIL
    return Outcome.ERROR


class Collector:
    def __init__(self) -> None:
        self._results: list[CheckResult] = []

    def append(self, result: CheckResult) -> None:
        self._results.append(result)

    def so_far(self) -> list[CheckResult]:
        return list(self._results)

    def drain(self) -> list[CheckResult]:
        results, self._results = self._results, []
        return results


collector = Collector()


def write_summary(terminal: Any, results: list[CheckResult], preflight_problems: list[str] = ()) -> None:
    """One block per check: outcome, id, environment, then what decided it, wrapped but never cut: the readings
    (label, measured, threshold) or the reason; a FAIL names its remediation, an ERROR what to fix."""
    results = sorted(results, key=lambda r: (ORDER.get(r.outcome, 9), not r.warning, r.env, r.check_id, r.nodeid))
    id_width = max(len(r.check_id) for r in results)
    env_width = max(len(r.env) for r in results)
    indent = 9 + id_width + 2 + env_width + 2
    width = max(60, shutil.get_terminal_size((140, 20)).columns - indent)
    terminal.write_sep("=", "entmoot checks")
    for r in results:
        said = "warn" if r.warning and r.outcome == Outcome.PASS else r.outcome
        colour = {Outcome.PASS: "green", Outcome.FIXED: "yellow", Outcome.SKIP: "yellow", Outcome.SILENCED: "cyan",
                  "warn": "yellow"}.get(said, "red")
        lines = wrap(_changed(r) + _detail(r), width) or [""]
        if r.outcome in (Outcome.FAIL, Outcome.FIXED):
            lines.append(f"-> remediation {r.remediation} ({r.remediation_state or RemediationState.PLANNED})")
        elif r.outcome == "error" and r.fix:
            lines += wrap(f"-> fix: {r.fix}", width)
        elif r.outcome == Outcome.SILENCED:
            lines += wrap(f"-> {r.silence.get('said', 'silenced')}", width)
        head = f"{said.upper():<8} {r.check_id:<{id_width}}  {r.env:<{env_width}}  "
        terminal.write_line(head + lines[0], **{colour: True})
        for line in lines[1:]:
            terminal.write_line(" " * indent + line, **{colour: True})
    for r in results:
        if r.outcome not in (Outcome.FAIL, Outcome.FIXED) or not (r.done or r.plan):
            continue
        terminal.write_line("")
        if r.done:  # carried out: what it changed, never again as a plan to follow
            terminal.write_line(f"Remediation {r.remediation} acted for {r.check_id} [{r.env}] "
                                f"({'fixed' if r.outcome == Outcome.FIXED else 'not fixed'}):")
            steps = [*(f"done: {change}" for change in r.done), f"after it: {r.recheck}"]
        else:
            terminal.write_line(f"Remediation plan for {r.check_id} [{r.env}] ({r.remediation}, {r.remediation_state or RemediationState.PLANNED}):")
            steps = r.plan
        for step in steps:
            terminal.write_line(f"  - {step}")
    for line in preflight_problems:
        terminal.write_line("")
        terminal.write_line(line, red=True)
    counts = {o: sum(1 for r in results if r.outcome == o) for o in ORDER}
    counts["warn"] = sum(1 for r in results if r.warning)
    for change in ("new", "still", "resolved"):
        counts[change] = sum(1 for r in results if r.change == change)
    counts["flapping"] = sum(1 for r in results if r.flapping)
    terminal.write_line("")
    terminal.write_line("checks: " + ", ".join(f"{n} {o}" for o, n in counts.items() if n))


# A number and its unit stay on one line: "280.04" at the end of one and "ms" at the start of the next misreads.
_UNIT = re.compile(r"(\d) (ms|s|min|h|days|bytes|KiB|MiB|GiB|requests/s)\b")


def wrap(text: str, width: int) -> list[str]:
    glued = _UNIT.sub("\\1\u00a0\\2", text)
    return [line.replace("\u00a0", " ") for line in textwrap.wrap(glued, width, break_on_hyphens=False)]


def _changed(r: CheckResult) -> str:
    """What the on-call's memory says, before the detail: ``[new]``, ``[still, since 2026-12-05 06:00 UTC, 3 runs]``,
    ``[resolved]``, ``[flapping]``."""
    if r.flapping:
        return "[flapping] "
    if r.change == "still":
        return f"[still, since {r.since[:16].replace('T', ' ')} UTC, {r.runs} runs] "
    return f"[{r.change}] " if r.change else ""


def _detail(r: CheckResult) -> str:
    if r.warning and r.outcome == Outcome.PASS:
        return r.warning.removeprefix("WARN ").split(": ", 1)[-1]
    if r.outcome in (Outcome.ERROR, Outcome.SKIP) or not r.readings:
        return r.message or "; ".join(r.readings)
    if r.outcome in (Outcome.FAIL, Outcome.FIXED, Outcome.SILENCED):  # the breached reading first: it is the verdict
        return r.finding or r.message
    return "; ".join(r.readings)
