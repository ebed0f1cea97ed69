"""Rules for "unusual activity" in CloudTrail (runbook Evening Checklist [3]), as configurable detectors.

The runbook prints the last five events for a person to judge; these rules say what is worth a look:
root use, console logins without MFA, IAM identity and policy changes, ingress opened to the world, KMS keys
disabled or scheduled for deletion, database or snapshot deletion, CloudTrail stopped, and bursts of denied
calls. A change by an allowed principal, or inside a change window, is expected; root use never is.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from entmoot_ops.config import CloudTrailSettings
from entmoot_ops.probes.cloudtrail import TrailEvent

IAM_CHANGES = {
    "CreateUser", "DeleteUser", "CreateAccessKey", "UpdateAccessKey", "DeleteAccessKey", "CreateLoginProfile",
    "UpdateLoginProfile", "AttachUserPolicy", "AttachRolePolicy", "AttachGroupPolicy", "PutUserPolicy", "PutRolePolicy",
    "PutGroupPolicy", "CreatePolicy", "CreatePolicyVersion", "SetDefaultPolicyVersion", "UpdateAssumeRolePolicy",
    "CreateRole", "DeleteRole", "AddUserToGroup", "DeactivateMFADevice",
}
WORLD = ("0.0.0.0/0", "::/0")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True)
class Finding:
    rule: str
    event: str  # a one-line description: time, name, principal

    def __str__(self) -> str:
        return f"{self.rule}: {self.event}"


def _describe(event: TrailEvent) -> str:
    return f"{event.time:%Y-%m-%dT%H:%M:%SZ} {event.name} by {event.principal}" + (
        f" ({event.error_code})" if event.error_code else "")


def _opens_to_world(event: TrailEvent) -> bool:
    return event.name in ("AuthorizeSecurityGroupIngress", "ModifySecurityGroupRules") and any(
        cidr in json.dumps(event.request or {}) for cidr in WORLD)


RULES: dict[str, Callable[[TrailEvent], bool]] = {
    "root-account-usage": lambda e: e.identity_type == "Root",
    "console-login-without-mfa": lambda e: e.name == "ConsoleLogin" and (e.additional or {}).get("MFAUsed") == "No",
    "iam-change": lambda e: e.source == "iam.amazonaws.com" and e.name in IAM_CHANGES and not e.error_code,
    "security-group-open-to-world": lambda e: _opens_to_world(e) and not e.error_code,
    "kms-key-disabled": lambda e: e.name in ("DisableKey", "ScheduleKeyDeletion") and not e.error_code,
    "db-deletion": lambda e: e.source == "rds.amazonaws.com" and e.name.startswith("Delete")
    and any(k in e.name for k in ("DBInstance", "DBCluster", "DBSnapshot", "DBClusterSnapshot")) and not e.error_code,
    "trail-logging-stopped": lambda e: e.name in ("StopLogging", "DeleteTrail") and not e.error_code,
}


def _expected(event: TrailEvent, settings: CloudTrailSettings) -> bool:
    if any(event.principal.startswith(prefix) for prefix in settings.allow_principals):
        return True
    weekday = WEEKDAYS[event.time.weekday()]
    moment = event.time.time().replace(tzinfo=None)
    return any(w.weekday == weekday and w.start <= moment < w.end for w in settings.change_windows)


def unusual(events: tuple[TrailEvent, ...], settings: CloudTrailSettings) -> list[Finding]:
    findings = []
    for event in events:
        for rule in settings.rules:
            detector = RULES.get(rule)
            if detector is None or not detector(event):
                continue
            if rule != "root-account-usage" and _expected(event, settings):
                continue
            findings.append(Finding(rule, _describe(event)))
    if "access-denied-burst" in settings.rules:
        denied: dict[str, list[datetime]] = {}
        for e in events:
            if e.error_code in ("AccessDenied", "UnauthorizedOperation", "Client.UnauthorizedOperation"):
                denied.setdefault(e.principal, []).append(e.time)
        for principal, times in sorted(denied.items()):
            count, start = _densest_hour(sorted(times))
            if count >= settings.access_denied_burst:
                findings.append(Finding("access-denied-burst", f"{count} denied calls by {principal} within an hour from {start:%Y-%m-%dT%H:%MZ}"))
    return findings


def _densest_hour(times: list[datetime]) -> tuple[int, datetime]:
    """The most calls in any 60 minutes, and when they began: a burst across a clock hour is still one burst."""
    best, best_start, first = 0, times[0], 0
    for last, moment in enumerate(times):
        while moment - times[first] >= timedelta(hours=1):
            first += 1
        if last - first + 1 > best:
            best, best_start = last - first + 1, times[first]
    return best, best_start
