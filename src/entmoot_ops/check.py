"""The check model: metadata declared next to each check, and the verdict helpers a check body uses.

A check is a pytest test decorated with :func:`check`. Its body measures through probes and ends in
:func:`expect` (threshold verdicts) — which records the reading for the summary and, on breach, raises an
``AssertionError`` naming the measured value, the threshold, the window and the remediation.
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import date, datetime
from typing import Any, Literal

import allure
import pytest

from entmoot_ops.secrets import masker

Severity = Literal["critical", "high", "medium", "low"]
SEVERITIES = ("critical", "high", "medium", "low")
# The markers that select a checklist: every check carries at least one.
CHECKLISTS = ("morning", "evening", "deploy", "handoff", "incident", "alerts", "weekly", "monthly", "load", "chaos")
Op = Literal["<", "<=", ">", ">=", "==", "!=", "in", "not in"]
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda v, t: v < t,
    "<=": lambda v, t: v <= t,
    ">": lambda v, t: v > t,
    ">=": lambda v, t: v >= t,
    "==": lambda v, t: v == t,
    "!=": lambda v, t: v != t,
    "in": lambda v, t: v in t,
    "not in": lambda v, t: v not in t,
}


@dataclass(frozen=True)
class CheckSpec:
    id: str
    title: str
    section: str
    severity: Severity
    remediation: str


def check(*, id: str, title: str, section: str, severity: Severity, remediation: str) -> pytest.MarkDecorator:
    """Declare a test as a runbook check. Validated at collection by the plugin."""
    return pytest.mark.check(id=id, title=title, section=section, severity=severity, remediation=remediation)


@dataclass
class Reading:
    label: str
    measured: str
    threshold: str  # "op value"
    window: str | None
    ok: bool
    against: str | None = None  # what the threshold is, when it is itself a measurement ("desired")

    def describe(self) -> str:
        """``running tasks 3 == desired 3``: the reading as a person says it."""
        op = "not in" if self.threshold.startswith("not in ") else self.threshold.split(" ", 1)[0]
        value = self.threshold[len(op) + 1:]
        return f"{self.label} {self.measured} {op} {self.against + ' ' if self.against else ''}{value}"


@dataclass
class CheckRun:
    """What one execution of a check measured; the plugin owns it, the check body fills it."""

    spec: CheckSpec
    env: str
    readings: list[Reading] = field(default_factory=list)


current_run: contextvars.ContextVar[CheckRun | None] = contextvars.ContextVar("current_run", default=None)


def format_value(value: Any, unit: str) -> str:
    if value is None:
        return "no data"
    if isinstance(value, (tuple, list, frozenset, set)):
        return "{" + ", ".join(format_value(v, unit) for v in value) + "}"
    if unit == "%" and isinstance(value, (int, float)):
        return f"{value * 100:.2f}%"
    if isinstance(value, float):
        text = f"{value:.3f}".rstrip("0").rstrip(".")
    else:
        text = str(value)
    return f"{text} {unit}".rstrip() if unit and unit != "%" else text


def expect(label: str, value: Any, op: Op, threshold: Any, *, unit: str = "", window: str | None = None,
           against: str | None = None) -> None:
    """Assert ``value op threshold``. ``value=None`` (nothing measured) is an error, never a pass. ``against``
    names a threshold that is itself measured (``expect("running tasks", 2, "==", 3, against="desired")``)."""
    run = current_run.get()
    if value is None:
        raise LookupError(f"{label}: no data measured{f' in {window}' if window else ''}; cannot judge")
    ok = _COMPARE[op](value, threshold)
    reading = Reading(label, format_value(value, unit), f"{op} {format_value(threshold, unit)}", window, ok, against)
    if run is not None:
        run.readings.append(reading)
    if not ok:
        remediation = f" -> remediation {run.spec.remediation}" if run else ""
        where = f" over {window}" if window else ""
        threshold = f"{op} {against} {format_value(threshold, unit)}" if against else reading.threshold
        raise AssertionError(f"{label}: measured {reading.measured}, threshold {threshold}{where}{remediation}")


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value)


def expect_none(label: str, found: Sequence[Any], describe: Callable[[Any], str], *, shown: int = 3) -> None:
    """Assert that nothing was found; the reading names the first few that were."""
    detail = "; ".join(describe(item) for item in found[:shown])
    expect(label + (f" ({detail})" if detail else ""), len(found), "==", 0)


def evidence(name: str, data: Any) -> None:
    """Attach what was measured (values, window, API used) to the Allure result, secrets masked."""
    text = masker(json.dumps(data, default=_jsonable, indent=2, sort_keys=True))
    allure.attach(text, name=name, attachment_type=allure.attachment_type.JSON)
