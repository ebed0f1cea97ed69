"""A check's result as a run records it: the record, the outcomes in their order of gravity, and the reading of a
run's junit XML, where results travel as ``user_properties`` (under xdist the controller sees what every worker
measured).

Part of the check model: a chaos experiment judges its steady state by the results of a run of the checks, below
the layer that turns pytest's reports into outcomes (:mod:`entmoot_ops.outcomes`).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path

PROPERTY = "entmoot.check"


class Outcome(StrEnum):
    PASS = "pass"
    FIXED = "fixed"  # failed, and passed again after its remediation acted
    FAIL = "fail"  # a threshold breached
    ERROR = "error"  # could not measure
    SILENCED = "silenced"  # failed, and known: a silence with an end and a reason hides it (entmoot-ops silence)
    SKIP = "skip"  # not judged here, and why


OUTCOMES = tuple(Outcome)


class RemediationState(StrEnum):
    """What became of a failing check's remediation; some carry a detail (``refused: production needs --yes``)."""

    NONE = ""  # the check did not fail
    PLANNED = "planned"  # shown as a plan (the default, without --remediate)
    MANUAL = "manual"  # a person's procedure: nothing to execute
    REFUSED = "refused"
    ACTION_FAILED = "action failed"
    FIXED = "fixed"
    NOT_FIXED = "acted, not fixed"

    def said(self, detail: str = "") -> str:
        return f"{self.value}: {detail}" if detail else self.value


@dataclass(frozen=True)
class CheckResult:
    check_id: str
    title: str
    env: str
    nodeid: str
    outcome: str  # an Outcome
    severity: str
    section: str
    measured: str
    threshold: str
    remediation: str
    remediation_state: str  # a RemediationState, said with its detail
    message: str
    finding: str = ""  # for a fail or a fix: the breached reading (or what the remediation did), without its pointer
    plan: list[str] = field(default_factory=list)  # what a remediation that did not act would do
    done: list[str] = field(default_factory=list)  # what a remediation that acted changed (--remediate)
    recheck: str = ""  # after it acted: what the check found again (its readings, or why it is still not fixed)
    readings: list[str] = field(default_factory=list)  # "running tasks 3 == desired 3"
    fix: str = ""  # for an error: what to fix in access, configuration or connectivity
    depends: list[str] = field(default_factory=list)  # what the check declares it depends on (check.DEPENDENCIES)
    touched: list[str] = field(default_factory=list)  # what its measurements reached this time
    aws_actions: list[str] = field(default_factory=list)  # the IAM actions its measurements called this time
    duration_seconds: float = 0.0
    values: list[dict] = field(default_factory=list)  # per reading: label, value and limit as numbers (or None), unit
    recorded: list[list] = field(default_factory=list)  # [name, value, labels] (check.record)
    evidence: list[str] = field(default_factory=list)  # the names of the evidence attached to its Allure result
    resource: str = ""  # the replica or host of a check parametrised per resource ("" for the environment)
    # What the on-call's memory says of it (entmoot_ops.history): new, still, resolved or "" (unchanged) since the last
    # run; flapping; for a problem that lasts, since when and for how many runs.
    change: str = ""
    flapping: bool = False
    recalled: bool = False  # its history was read: change and flapping say what it knows (else nothing is known)
    since: str = ""  # ISO 8601, UTC
    runs: int = 0
    silence: dict = field(default_factory=dict)  # the silence that hid it: id, reason, by, ends
    forecast: dict = field(default_factory=dict)  # a gauge heading for its threshold (history.forecast): a WARN
    warning: str = ""  # the WARN line of that forecast

    def as_properties(self) -> list[tuple[str, str]]:
        return [
            (PROPERTY, json.dumps(asdict(self), default=str)),
            ("check_id", self.check_id),
            ("outcome", self.outcome),
            ("measured", self.measured),
            ("threshold", self.threshold),
            ("runbook", self.section),
            ("remediation", self.remediation),
            *((name, value) for name, value in (("change", self.change), ("flapping", "true" if self.flapping else ""),
                                                ("failing_since", self.since), ("warning", self.warning),
                                                ("silenced", self.silence.get("said", ""))) if value),
        ]

    @classmethod
    def from_properties(cls, properties: list[tuple[str, object]]) -> CheckResult | None:
        for name, value in properties:
            if name == PROPERTY:
                return cls(**json.loads(str(value)))
        return None


def read_junit(path: Path) -> list[CheckResult]:
    """The check results a run left in its junit XML (items that are not checks are ignored)."""
    found = []
    for case in ET.parse(path).getroot().iter("testcase"):
        result = CheckResult.from_properties([(p.get("name"), p.get("value")) for p in case.iter("property")])
        if result is not None:
            found.append(result)
    return found


ORDER = {"error": 0, "fail": 1, "fixed": 2, "silenced": 3, "skip": 4, "pass": 5}
