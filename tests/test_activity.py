"""Unusual-activity rules: what each detects, and what the allow-list and change windows excuse."""

from __future__ import annotations

from datetime import datetime, time, UTC

from entmoot_ops.activity import unusual
from entmoot_ops.config import ChangeWindow, CloudTrailSettings
from entmoot_ops.probes.cloudtrail import TrailEvent

SUNDAY_0230 = datetime(2026, 11, 29, 2, 30, tzinfo=UTC)
MONDAY_1000 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
MALLORY = "arn:aws:iam::123456789012:user/mallory"
PIPELINE = "arn:aws:sts::123456789012:assumed-role/entmoot-deploy/run-42"


def event(name, at=MONDAY_1000, principal=MALLORY, source="iam.amazonaws.com", kind="IAMUser", error=None, request=None):
    return TrailEvent(f"{name}-{at}-{principal}", name, source, at, principal, kind, error, request, None)


SETTINGS = CloudTrailSettings(allow_principals=("arn:aws:sts::123456789012:assumed-role/entmoot-deploy/",),
                              change_windows=(ChangeWindow(weekday="sunday", start=time(2), end=time(3)),))


def rules(*events, settings=SETTINGS):
    return [f.rule for f in unusual(tuple(events), settings)]


def test_iam_change_is_reported_unless_allowed_or_in_window():
    assert rules(event("AttachRolePolicy")) == ["iam-change"]
    assert rules(event("AttachRolePolicy", principal=PIPELINE)) == []
    assert rules(event("AttachRolePolicy", at=SUNDAY_0230)) == []


def test_root_is_reported_even_in_a_change_window():
    assert rules(event("GetAccountSummary", at=SUNDAY_0230, principal="arn:aws:iam::123456789012:root", kind="Root")) == [
        "root-account-usage"]


def test_only_world_open_ingress_counts():
    private = {"ipPermissions": {"items": [{"ipRanges": {"items": [{"cidrIp": "10.0.0.0/8"}]}}]}}
    world = {"ipPermissions": {"items": [{"ipv6Ranges": {"items": [{"cidrIpv6": "::/0"}]}}]}}
    assert rules(event("AuthorizeSecurityGroupIngress", source="ec2.amazonaws.com", request=private)) == []
    assert rules(event("AuthorizeSecurityGroupIngress", source="ec2.amazonaws.com", request=world)) == [
        "security-group-open-to-world"]


def test_a_denied_change_is_not_a_change_but_a_burst_of_denials_is_reported():
    denied = [event("CreateUser", at=MONDAY_1000.replace(minute=m), error="AccessDenied") for m in range(20)]
    assert rules(*denied[:19]) == []
    assert rules(*denied) == ["access-denied-burst"]


def test_rules_can_be_switched_off():
    assert rules(event("StopLogging", source="cloudtrail.amazonaws.com"),
                 settings=CloudTrailSettings(rules=("root-account-usage",))) == []


def test_a_burst_across_a_clock_hour_is_one_burst():
    from datetime import timedelta

    start = datetime(2026, 11, 29, 1, 59, 50, tzinfo=UTC)
    denied = [event("UpdateService", at=start + timedelta(seconds=i), error="AccessDenied") for i in range(30)]
    findings = unusual(tuple(denied), SETTINGS)
    assert [f.rule for f in findings] == ["access-denied-burst"]
    assert "30 denied calls by arn:aws:iam::123456789012:user/mallory within an hour from 2026-11-29T01:59Z" in findings[0].event


def test_the_sandboxs_unusual_event_is_unusual_whenever_it_is_injected():
    """Injected at 03:30 on a Sunday, an hour ago is in sandbox.toml's change window: the fault moves it out."""
    from pathlib import Path

    from entmoot_ops.config import load_environment
    from entmoot_ops.sandbox import faults, moto_extensions

    undo = faults.cloudtrail_event(None, datetime(2026, 11, 29, 3, 30, tzinfo=UTC), kind="iam_change")
    try:
        placed = moto_extensions.cloudtrail.trail_events[-1]
        settings = load_environment("sandbox", Path(__file__).resolve().parent.parent / "environments").cloudtrail
        found = TrailEvent.parse(placed)
        assert [f.rule for f in unusual((found,), settings)] == ["iam-change"], placed["EventTime"]
    finally:
        undo()
