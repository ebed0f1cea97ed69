"""Faults of the infrastructure around the API: ECS, alarms, a component or dependency down or slow, AWS throttling,
Logs Insights, backups, CloudTrail, the on-call's host."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import contextlib
import os
import signal


from entmoot_ops.sandbox import aws as sandbox_aws
from entmoot_ops.sandbox import moto_extensions
from entmoot_ops.sandbox.processes import process_tree

if TYPE_CHECKING:
    from entmoot_ops.sandbox.core import Target

from entmoot_ops.sandbox.faults.common import (forgetting_traffic)

def ecs_stuck_rollout(sandbox: Target, since: datetime) -> Callable[[], None]:
    """The service's rollout held one task short of its desired count: the deployment never completes."""
    sandbox.agent.stuck_rollout = True
    sandbox.agent.tick()

    def undo() -> None:
        sandbox.agent.stuck_rollout = False
        sandbox.agent.tick()
    return undo


def alarm(sandbox: Target, since: datetime, name: str = sandbox_aws.ALARMS[0], state: str = "ALARM",
          reason: str = "Threshold Crossed: 1 datapoint [4.2] was greater than the threshold (1.0).") -> Callable[[], None]:
    """A CloudWatch alarm (``name``) set to ``state`` with ``reason``; undo sets it back to OK."""
    cloudwatch = sandbox.aws.client("cloudwatch")
    cloudwatch.set_alarm_state(AlarmName=name, StateValue=state, StateReason=reason)
    return lambda: cloudwatch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="sandbox: healthy")


def component_killed(sandbox: Target, since: datetime, component: str = "redis") -> Callable[[], None]:
    """The component's server stops (the API, the PostgreSQL primary or replica, Redis); undo starts it again and,
    as for every fault, forgets the slow and failed requests it caused."""
    sandbox.component(component, "stop")
    return forgetting_traffic(sandbox, since, lambda: sandbox.component(component, "start"))


def component_frozen(sandbox: Target, since: datetime, component: str = "redis") -> Callable[[], None]:
    """SIGSTOP on the component's whole process tree: connections are accepted by the kernel, nothing answers."""
    pid = sandbox.pid_of(component)
    if pid is None:
        raise KeyError(f"{component} is not running")
    frozen = process_tree(pid)
    for member in frozen:
        os.kill(member, signal.SIGSTOP)

    def undo() -> None:
        for member in reversed(frozen):
            with contextlib.suppress(ProcessLookupError):
                os.kill(member, signal.SIGCONT)
    return forgetting_traffic(sandbox, since, undo)


def dependency_latency(sandbox: Target, since: datetime, dependency: str = "redis", ms: float = 1500) -> Callable[[], None]:
    """Every answer of Redis or the primary reaches the API ``ms`` late (the suite's own probes are not slowed)."""
    sandbox.proxy_route(dependency, latency_ms=ms)
    return forgetting_traffic(sandbox, since, lambda: sandbox.proxy_route(dependency))


def dependency_blackhole(sandbox: Target, since: datetime, dependency: str = "redis") -> Callable[[], None]:
    """Between the API and Redis or the primary, connections are accepted and nothing goes through either way."""
    sandbox.proxy_route(dependency, blackhole=True)
    return forgetting_traffic(sandbox, since, lambda: sandbox.proxy_route(dependency))


def aws_throttled(sandbox: Target, since: datetime, service: str = "ecs", calls: int = 1_000_000) -> Callable[[], None]:
    """An AWS API (its IAM prefix: ecs, cloudwatch, logs...) answers Rate exceeded to the next ``calls`` calls."""
    moto_extensions.iam.throttled[service] = calls
    return lambda: moto_extensions.iam.throttled.pop(service, None)


def insights_slow(sandbox: Target, since: datetime, seconds: float = 3) -> Callable[[], None]:
    """Logs Insights queries stay Running for ``seconds`` (a busy account), polled until they complete."""
    before = moto_extensions.logs.insights_timing["complete"]
    moto_extensions.logs.insights_timing["complete"] = seconds
    return lambda: moto_extensions.logs.insights_timing.update(complete=before)


def insights_failed(sandbox: Target, since: datetime) -> Callable[[], None]:
    """Logs Insights queries end Failed: the suite reads the raw events instead (FilterLogEvents)."""
    moto_extensions.logs.insights_failing = True
    return lambda: setattr(moto_extensions.logs, "insights_failing", False)


def stale_backups(sandbox: Target, since: datetime, hours: float = 30) -> Callable[[], None]:
    """The latest automated snapshots ``hours`` old: backups look stale."""
    sandbox.aws.set_snapshot_times(-timedelta(hours=hours))
    return lambda: sandbox.aws.set_snapshot_times(timedelta(hours=hours))


def pitr_lag(sandbox: Target, since: datetime, minutes: float = 45) -> Callable[[], None]:
    """The latest restorable time ``minutes`` behind: point-in-time recovery lags."""
    sandbox.aws.set_restore_lag(minutes * 60)
    return lambda: sandbox.aws.set_restore_lag(0)


def _unusual(kind: str, principal: str | None, at: datetime) -> list[dict]:
    account = sandbox_aws.ACCOUNT
    user = principal or f"arn:aws:iam::{account}:user/mallory"
    event = sandbox_aws.trail_event
    kinds = {
        "root_usage": lambda: [event("GetAccountSummary", "iam.amazonaws.com", f"arn:aws:iam::{account}:root", at,
                                     read_only=True, user_type="Root")],
        "console_no_mfa": lambda: [event("ConsoleLogin", "signin.amazonaws.com", user, at, user_type="IAMUser",
                                         additional={"MFAUsed": "No", "LoginTo": "https://console.aws.amazon.com"})],
        "iam_change": lambda: [event("CreateAccessKey", "iam.amazonaws.com", user, at, request={"userName": "ci-bot"})],
        "sg_open": lambda: [event("AuthorizeSecurityGroupIngress", "ec2.amazonaws.com", user, at, request={
            "groupId": "sg-0db", "ipPermissions": {"items": [{"fromPort": 5432, "toPort": 5432,
                                                               "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]}}]}})],
        "kms_disable": lambda: [event("ScheduleKeyDeletion", "kms.amazonaws.com", user, at, request={"keyId": "k-1"})],
        "db_delete": lambda: [event("DeleteDBSnapshot", "rds.amazonaws.com", user, at,
                                    request={"dBSnapshotIdentifier": "entmoot-before-migration"})],
        "trail_stopped": lambda: [event("StopLogging", "cloudtrail.amazonaws.com", user, at, request={"name": "entmoot"})],
        "access_denied_burst": lambda: [event("UpdateService", "ecs.amazonaws.com", user, at + timedelta(seconds=i),
                                              error_code="AccessDenied") for i in range(30)],
    }
    if kind not in kinds:
        raise KeyError(f"unknown CloudTrail event kind {kind!r} (known: {', '.join(sorted(kinds))})")
    return kinds[kind]()


def cloudtrail_event(sandbox: Target, since: datetime, kind: str = "root_usage", principal: str | None = None,
                     hours_ago: float = 1) -> Callable[[], None]:
    """An unusual CloudTrail event of ``kind`` (root usage, console login without MFA...) ``hours_ago``."""
    at = since - timedelta(hours=hours_ago)
    if at.weekday() == 6 and 2 <= at.hour < 3:
        # Sunday 02:00-03:00 UTC is sandbox.toml's change window, which excuses a change: an hour earlier, the event
        # is unusual whatever the time of day the fault is injected at.
        at -= timedelta(hours=1)
    ids = moto_extensions.cloudtrail.add_trail_events(_unusual(kind, principal, at))
    return lambda: moto_extensions.cloudtrail.remove_trail_events(ids)


def tool_missing(sandbox: Target, since: datetime, tool: str = "jq") -> Callable[[], None]:
    """The SSH host's PATH has no ``tool``, as a bastion built without it."""
    target = sandbox.ssh_host.remove_program(tool)
    return lambda: sandbox.ssh_host.restore_program(tool, target)
