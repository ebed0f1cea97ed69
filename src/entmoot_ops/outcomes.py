"""Outcomes of checks: pass, fail (threshold breached), error (could not measure), skip (not judged).

Results travel as junit ``user_properties`` so that, under xdist, the controller sees what every worker measured.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import pytest

PROPERTY = "entmoot.check"


@dataclass(frozen=True)
class CheckResult:
    check_id: str
    title: str
    env: str
    nodeid: str
    outcome: str  # pass, fixed, fail, error, skip
    severity: str
    section: str
    measured: str
    threshold: str
    remediation: str
    remediation_state: str
    message: str
    plan: list[str] = field(default_factory=list)

    def as_properties(self) -> list[tuple[str, str]]:
        return [
            (PROPERTY, json.dumps(asdict(self))),
            ("check_id", self.check_id),
            ("outcome", self.outcome),
            ("measured", self.measured),
            ("threshold", self.threshold),
            ("runbook", self.section),
            ("remediation", self.remediation),
        ]

    @classmethod
    def from_properties(cls, properties: list[tuple[str, object]]) -> CheckResult | None:
        for name, value in properties:
            if name == PROPERTY:
                return cls(**json.loads(str(value)))
        return None


def classify(report: pytest.TestReport, call: pytest.CallInfo[Any], remediation_state: str) -> str:
    if report.skipped:
        return "skip"
    if report.passed:
        return "fixed" if remediation_state == "fixed" else "pass"
    if report.when == "call" and call.excinfo is not None and call.excinfo.errisinstance(AssertionError):
        return "fail"
    return "error"


def first_line(report: pytest.TestReport) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    if report.failed:
        text = str(report.longrepr)
        lines = [line for line in text.splitlines() if line.startswith("E ")]
        first = lines[0][1:].strip() if lines else text.strip().splitlines()[-1]
        return first.removeprefix("FAIL ").removeprefix("AssertionError: ")
    return ""


class Collector:
    def __init__(self) -> None:
        self._results: list[CheckResult] = []

    def append(self, result: CheckResult) -> None:
        self._results.append(result)

    def drain(self) -> list[CheckResult]:
        results, self._results = self._results, []
        return results


collector = Collector()
ORDER = {"error": 0, "fail": 1, "fixed": 2, "skip": 3, "pass": 4}


def write_summary(terminal: Any, results: list[CheckResult]) -> None:
    results = sorted(results, key=lambda r: (ORDER.get(r.outcome, 9), r.env, r.check_id, r.nodeid))
    headers = ("check", "env", "measured", "threshold", "outcome", "remediation")
    rows = []
    for r in results:
        remediation = r.remediation if r.outcome in ("fail", "error", "fixed") else ""
        if remediation and r.remediation_state:
            remediation += f" ({r.remediation_state})"
        measured = r.measured or (r.message if r.outcome in ("error", "skip") else "")
        rows.append((r.check_id, r.env, _clip(measured, 60), _clip(r.threshold, 30), r.outcome.upper(), remediation))
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    terminal.write_sep("=", "entmoot checks")
    terminal.write_line("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    for row in rows:
        colour = {"PASS": "green", "FIXED": "green", "SKIP": "yellow"}.get(row[4], "red")
        terminal.write_line("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)), **{colour: True})
    plans = [r for r in results if r.plan and r.outcome in ("fail", "fixed")]
    for r in plans:
        terminal.write_line("")
        terminal.write_line(f"Remediation plan for {r.check_id} [{r.env}] ({r.remediation}, {r.remediation_state or 'planned'}):")
        for step in r.plan:
            terminal.write_line(f"  - {step}")
    counts = {o: sum(1 for r in results if r.outcome == o) for o in ORDER}
    terminal.write_line("")
    terminal.write_line("checks: " + ", ".join(f"{n} {o}" for o, n in counts.items() if n))


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
