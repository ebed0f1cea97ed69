"""The check model: metadata declared next to each check, and the verdict helpers a check body uses.

A check is a pytest test decorated with :func:`check`. Its body measures through probes and ends in
:func:`expect` (threshold verdicts) — which records the reading for the summary and, on breach, raises an
``AssertionError`` naming the measured value, the threshold, the window and the remediation.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import date, datetime
from typing import Any, Literal, TypeVar

import allure
import pytest

from entmoot_ops.errors import one_line
from entmoot_ops.secrets import masker

T = TypeVar("T")

Severity = Literal["critical", "high", "medium", "low"]
SEVERITIES = ("critical", "high", "medium", "low")
# The markers that select a checklist: every check carries at least one.
CHECKLISTS = ("morning", "evening", "deploy", "handoff", "incident", "alerts", "weekly", "monthly", "load", "chaos", "hosts")
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


# What a check can depend on. A fault that breaks one of these may turn every check that depends on it red: the
# detection matrix and chaos experiments take their blast radius from here, not from lists of check ids.
DEPENDENCIES = {
    "api": "the API's own endpoint (/health, its routes) and its tasks' ECS metrics",
    "traffic": "what the API served, as the load balancer and the access logs measure it",
    "primary": "the PostgreSQL primary, directly or through its RDS metrics",
    "replica": "the PostgreSQL read replicas",
    "redis": "Redis, directly or through its ElastiCache metrics",
    "aws": "the AWS control plane (ECS, RDS, CloudWatch alarms, CloudTrail, ECR, ELB)",
    "hosts": "the on-call's host and self-managed hosts, through testinfra (a bastion, a database host over SSH)",
}


@dataclass(frozen=True)
class CheckSpec:
    id: str
    title: str
    section: str
    severity: Severity
    remediation: str
    depends: tuple[str, ...]


def check(*, id: str, title: str, section: str, severity: Severity, remediation: str,
          depends: tuple[str, ...]) -> pytest.MarkDecorator:
    """Declare a test as a runbook check, with what it depends on (DEPENDENCIES). Validated at collection by the
    plugin; tests/test_dependencies_declared.py holds each declaration to what the check really touches."""
    return pytest.mark.check(id=id, title=title, section=section, severity=severity, remediation=remediation,
                             depends=tuple(depends))


@dataclass
class Reading:
    label: str
    measured: str
    threshold: str  # "op value"
    window: str | None
    ok: bool
    against: str | None = None  # what the threshold is, when it is itself a measurement ("desired")
    value: float | None = None  # the measured value and the threshold as numbers, where they are (for dashboards)
    limit: float | None = None
    unit: str = ""
    op: str = ""
    gauge: str = ""  # the stable name of a level that drifts toward its threshold (history.forecast fits its trend)

    def describe(self) -> str:
        """``running tasks 3 == desired 3``: the reading as a person says it. An equality that holds against a
        constant says only the value (``PRIMARY deployments 1``, not ``1 == 1``)."""
        op = "not in" if self.threshold.startswith("not in ") else self.threshold.split(" ", 1)[0]
        value = self.threshold[len(op) + 1:]
        if self.ok and op in ("==", "is") and not self.against:
            return f"{self.label} {self.measured}"
        return f"{self.label} {self.measured} {op} {self.against + ' ' if self.against else ''}{value}"


@dataclass
class CheckRun:
    """What one execution of a check measured; the plugin owns it, the check body fills it."""

    spec: CheckSpec
    env: str
    readings: list[Reading] = field(default_factory=list)
    touched: set[str] = field(default_factory=set)  # the DEPENDENCIES its measurements reached
    aws_actions: set[str] = field(default_factory=set)  # the IAM actions its measurements called ("logs:StartQuery")
    # Evidence reads put off until the verdict is known: done for a check that did not pass, or on --evidence all.
    deferred: list[tuple[str, Callable[[], Any]]] = field(default_factory=list)
    recorded: list[tuple[str, float, dict[str, str]]] = field(default_factory=list)  # see record()
    charts: list[tuple[str, Callable[[], Any]]] = field(default_factory=list)  # see chart()
    evidence: list[str] = field(default_factory=list)  # the names of the evidence attached, as the report lists them
    # Evidence held until the plugin attaches it on pytest's own thread: Allure files an attachment under the test
    # that its thread is running, and a check may measure ahead of its turn, on another thread (see attach_held).
    held: list[tuple[str, str]] = field(default_factory=list)

    def absorb(self, measured: CheckRun) -> None:
        """Take over what the same check measured on another thread."""
        self.readings += measured.readings
        self.touched |= measured.touched
        self.aws_actions |= measured.aws_actions
        self.deferred += measured.deferred
        self.recorded += measured.recorded
        self.charts += measured.charts
        self.evidence += measured.evidence
        self.held += measured.held


current_run: contextvars.ContextVar[CheckRun | None] = contextvars.ContextVar("current_run", default=None)


# True while a best-effort read runs: what it reaches informs a verdict, it is not what the check depends on.
_informing: contextvars.ContextVar[bool] = contextvars.ContextVar("informing", default=False)
@dataclass
class Reached:
    """What a measurement reached: the dependencies, and the IAM actions it called."""

    dependencies: set[str] = field(default_factory=set)
    aws_actions: set[str] = field(default_factory=set)

    def replay(self) -> None:
        touching(*self.dependencies)
        calling(*self.aws_actions)


_collectors: contextvars.ContextVar[tuple[Reached, ...]] = contextvars.ContextVar("touch_collectors", default=())


def touching(*dependencies: str) -> None:
    """The clients say which dependency a measurement reaches, for the check running now (if any)."""
    _reached("dependencies", "touched", dependencies)


def calling(*actions: str) -> None:
    """The AWS client says which IAM action a measurement calls: a check needs those of its verdict."""
    _reached("aws_actions", "aws_actions", actions)


def _reached(collected: str, on_run: str, items: tuple[str, ...]) -> None:
    for found in _collectors.get():
        getattr(found, collected).update(items)
    run = current_run.get()
    if run is not None and not _informing.get():  # a best-effort read informs a verdict; the verdict does not need it
        getattr(run, on_run).update(items)


@contextlib.contextmanager
def collecting() -> Iterator[Reached]:
    """What a measurement reaches, kept with a reading that later checks share (Clients.remember)."""
    found = Reached()
    token = _collectors.set((*_collectors.get(), found))
    try:
        yield found
    finally:
        _collectors.reset(token)


def format_value(value: Any, unit: str) -> str:
    if value is None:
        return "no data"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (tuple, list, frozenset, set)):
        return "{" + ", ".join(format_value(v, unit) for v in value) + "}"
    if unit == "%" and isinstance(value, (int, float)):
        return f"{value * 100:.2f}%"
    if isinstance(value, float):
        text = f"{value:.3f}".rstrip("0").rstrip(".")
    else:
        text = str(value)
    return f"{text} {unit}".rstrip() if unit and unit != "%" else text


class Breach(AssertionError):
    """A threshold breached: the finding (what was measured against which threshold, over which window) and the
    remediation that answers it, which the verdict names after the finding."""

    def __init__(self, finding: str, remediation: str | None):
        super().__init__(finding + (f" -> remediation {remediation}" if remediation else ""))
        self.finding = finding
        self.remediation = remediation


class Fixed(AssertionError):
    """A check that failed and passed again after its remediation acted. It stays a failure: something was wrong,
    and a gate that rolled a release back has not verified that release."""


class NotFixed(AssertionError):
    """A check that still fails after its remediation acted: what was done comes first, since it is done (a
    rollback is not a plan any more), then why the check is still not passing."""


def finding(error: BaseException) -> str:
    """What a failure found, without the pointer to its remediation."""
    return error.finding if isinstance(error, Breach) else str(error)


def expect(label: str, value: Any, op: Op, threshold: Any, *, unit: str = "", window: str | None = None,
           against: str | None = None, gauge: str = "") -> None:
    """Assert ``value op threshold``. ``value=None`` (nothing measured) is an error, never a pass. ``against``
    names a threshold that is itself measured (``expect("running tasks", 2, "==", 3, against="desired")``).
    ``gauge``: the value is a level that drifts (free storage, connections in use, lag, memory, headroom), not a
    count or a rate over a window, and this is its name, the same from run to run (a label may quote what it
    measured): the run warns when its recent trend crosses the threshold soon."""
    run = current_run.get()
    if value is None:
        raise LookupError(f"{label}: no data measured{f' in {window}' if window else ''}; cannot judge")
    ok = _COMPARE[op](value, threshold)
    reading = Reading(label, format_value(value, unit), f"{op} {format_value(threshold, unit)}", window, ok, against,
                      _number(value), _number(threshold), unit, op, gauge)
    if run is not None:
        run.readings.append(reading)
    if not ok:
        where = f" over {window}" if window else ""
        threshold = f"{op} {against} {format_value(threshold, unit)}" if against else reading.threshold
        raise Breach(f"{label}: measured {reading.measured}, threshold {threshold}{where}", run.spec.remediation if run else None)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) else None


def record(name: str, value: float, **labels: str) -> None:
    """A figure a dashboard wants beside the readings (a chaos experiment's detection seconds, a load run's p95),
    exported as the metric ``entmoot_<name>`` with these labels (entmoot_ops.metrics)."""
    run = current_run.get()
    if run is not None and _number(value) is not None:
        run.recorded.append((name, float(value), labels))


def chart(title: str, draw: Callable[[], Any]) -> None:
    """A chart of the evidence (``draw`` returns an :class:`entmoot_ops.charts.Chart`), drawn once the verdict is
    known: for a check that did not pass, or every check with ``--charts all``; best effort, as evidence is."""
    run = current_run.get()
    if run is not None:
        run.charts.append((title, draw))


def attach_chart(title: str, render: Callable[[], bytes]) -> None:
    """Draw one chart (``render`` returns PNG bytes) and attach it; a failure to read or draw is attached as
    "unavailable: ...", never the check's outcome."""
    png = best_effort(title, render)
    if isinstance(png, Unavailable):
        evidence(f"chart: {title}", png)
    else:
        allure.attach(png, name=title, attachment_type=allure.attachment_type.PNG)


def expect_present(label: str, value: Any) -> None:
    """Assert that a value was reported at all (a version, an id): the reading is the value itself."""
    run = current_run.get()
    reading = Reading(label, "(missing)" if value in (None, "") else str(value), "is present", None, value not in (None, ""))
    if run is not None:
        run.readings.append(reading)
    if not reading.ok:
        raise Breach(f"{label}: measured (missing), threshold present", run.spec.remediation if run else None)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Unavailable):
        return str(value)
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value)


def expect_none(label: str, found: Sequence[Any], describe: Callable[[Any], str], *, shown: int = 3) -> None:
    """Assert that nothing was found; the reading names the first few that were."""
    detail = "; ".join(describe(item) for item in found[:shown])
    expect(label + (f" ({detail})" if detail else ""), len(found), "==", 0)


@dataclass(frozen=True)
class Unavailable:
    """Evidence that could not be read, and why, in one line: it is shown, it decides nothing."""

    reason: str

    def __str__(self) -> str:
        return f"unavailable: {self.reason}"

    def describe(self, shown: int = 3) -> str:  # noqa: ARG002 - stands where a reading describes itself
        return str(self)


def best_effort(what: str, read: Callable[[], T]) -> T | Unavailable:
    """A read that informs a verdict without deciding it (evidence, a likely cause): any failure, even an answer
    of an unexpected shape, becomes :class:`Unavailable` with one line."""
    token = _informing.set(True)
    try:
        return read()
    except Exception as exc:  # noqa: BLE001 - evidence is best effort by definition
        return Unavailable(one_line(exc))
    finally:
        _informing.reset(token)


def evidence(name: str, data: Any) -> None:
    """Attach what was measured (values, window, API used) to the Allure result, secrets masked. A callable is an
    evidence *read*: it runs only once the verdict is known and the check did not pass (or --evidence all), and
    a failure of it is shown as "unavailable: ...", never as the check's outcome."""
    run = current_run.get()
    if callable(data) and run is not None:
        run.deferred.append((name, data))
        return
    if callable(data):
        data = best_effort(name, data)
    text = masker.dumps(data, default=_jsonable, indent=2, sort_keys=True)
    if run is None:
        allure.attach(text, name=name, attachment_type=allure.attachment_type.JSON)
        return
    run.held.append((name, text))
    run.evidence.append(name)


def attach_held(run: CheckRun) -> None:
    """Attach the evidence a check run holds, to the test pytest runs now on this thread."""
    held, run.held = run.held, []
    for name, text in held:
        allure.attach(text, name=name, attachment_type=allure.attachment_type.JSON)
