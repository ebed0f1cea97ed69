"""Remediations: registry, the context they run in, and the audit log.

A remediation has a ``plan`` (read-only: what it would do, with the numbers it would use) and, when the
runbook procedure can be automated safely, an ``act`` that performs it through *writable* clients and returns
what changed. The plugin shows the plan by default; ``--remediate`` acts, writes an audit line, and runs the
failed check again until it passes or the verification deadline passes.
"""

from __future__ import annotations

import getpass
import os
import threading
from dataclasses import dataclass, field
from datetime import datetime, UTC
from pathlib import Path
from typing import Any, Protocol

from entmoot_ops.clients import Clients
from entmoot_ops.config import Environment
from entmoot_ops.secrets import masker


@dataclass
class RemediationContext:
    env: Environment
    readonly: Clients
    writable: Clients
    check_id: str
    failure: str


@dataclass(frozen=True)
class Change:
    action: str
    before: Any
    after: Any
    summary: str = ""  # how a person says it ("release rolled back from X to Y"); else action: before -> after

    def describe(self) -> str:
        return self.summary or f"{self.action}: {self.before} -> {self.after}"


class Plan(Protocol):
    def __call__(self, ctx: RemediationContext) -> list[str]: ...


class Act(Protocol):
    def __call__(self, ctx: RemediationContext) -> list[Change]: ...


@dataclass(frozen=True)
class Remediation:
    id: str
    title: str
    section: str
    plan: Plan
    act: Act | None = None  # None: a procedure for a person; the plan is the runbook's steps


REGISTRY: dict[str, Remediation] = {}


def remediation(id: str, *, title: str, section: str, plan: Plan, act: Act | None = None) -> Remediation:
    if id in REGISTRY:
        raise ValueError(f"remediation {id} registered twice")
    REGISTRY[id] = Remediation(id=id, title=title, section=section, plan=plan, act=act)
    return REGISTRY[id]


def procedure(id: str, *, title: str, section: str, steps: list[str]) -> Remediation:
    """A remediation a person carries out: its plan is the list of runbook steps."""
    return remediation(id, title=title, section=section, plan=lambda ctx: list(steps))


@dataclass
class AuditLog:
    path: Path
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def write(self, *, env: str, check_id: str, remediation_id: str, event: str, **details: Any) -> None:
        record = {
            "time": datetime.now(UTC).isoformat(),
            "who": os.environ.get("ENTMOOT_OPERATOR") or getpass.getuser(),
            "env": env,
            "check": check_id,
            "remediation": remediation_id,
            "event": event,
            **details,
        }
        line = masker.dumps(record, sort_keys=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, self.path.open("a") as handle:
            handle.write(line + "\n")


def describe_changes(changes: list[Change]) -> list[dict[str, Any]]:
    return [{"action": c.action, "before": c.before, "after": c.after} for c in changes]

