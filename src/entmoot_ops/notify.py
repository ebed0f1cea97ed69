"""Notifications on state change, never on every run: Slack (incoming webhook), PagerDuty (Events API v2) and a
generic JSON webhook, configured per environment under ``[notify]``.

Each channel remembers, per environment and check, the state it was last told (``problem`` or ``ok``) in a state
file kept between runs. A check that turns FAIL or ERROR is a problem; one that passes again (or was FIXED) after a
problem is resolved; a skipped check changes nothing. A channel that could not be told is told again next run.
A failed send, or a channel whose secret is unresolved (skipped, the others still told), is one line: it never
changes a verdict or the exit code, nor fails a preflight.

The vendors' own clients: ``slack_sdk.webhook.WebhookClient`` and ``pagerduty.EventsApiV2Client`` (the maintained
successor of pdpyras), each pointed at a configurable base URL and bounded by the configured timeout.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, UTC
from pathlib import Path
from typing import Any, Literal

from entmoot_ops.config import Environment, NotifySettings
from entmoot_ops.errors import OpsError, one_line
from entmoot_ops.results import CheckResult, Outcome
from entmoot_ops.secrets import masker
from entmoot_ops.redaction import excerpt

State = Literal["problem", "ok"]
PROBLEMS = ("fail", "error")
SEVERITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3}
PAGERDUTY_SEVERITY = {"critical": "critical", "high": "error", "medium": "warning", "low": "info"}


@dataclass(frozen=True)
class Event:
    kind: Literal["problem", "resolved", "fixed", "flapping", "stopped flapping"]
    result: CheckResult
    report_url: str | None

    @property
    def dedup_key(self) -> str:
        return f"{self.result.env}/{told_as(self.result)}"

    def headline(self) -> str:
        r = self.result
        said = {"problem": r.outcome.upper(), "resolved": "RESOLVED", "fixed": "FIXED", "flapping": "FLAPPING",
                "stopped flapping": "STOPPED FLAPPING"}[self.kind]
        return masker(f"{said} {told_as(r)} [{r.env}]: {r.title}")

    def body(self) -> dict[str, Any]:
        """What every channel says: the check, environment, reading and remediation, masked."""
        r = self.result
        fields = {"event": self.kind, "environment": r.env, "check": r.check_id, "resource": r.resource, "title": r.title,
                  "outcome": r.outcome,
                  "severity": r.severity, "measured": r.measured, "threshold": r.threshold, "message": r.message,
                  "remediation": r.remediation, "remediation_state": r.remediation_state, "runbook_section": r.section,
                  "report_url": self.report_url, "at": datetime.now(UTC).isoformat(timespec="seconds"),
                  "change": r.change, "flapping": r.flapping, "failing_since": r.since, "failing_runs": r.runs}
        return {key: masker(value) if isinstance(value, str) else value for key, value in fields.items()}


class Channel:
    name: str

    def wants(self, event: Event) -> bool:
        return True

    def send(self, event: Event) -> None:
        raise NotImplementedError


class Slack(Channel):
    name = "slack"

    def __init__(self, url: str, timeout: float):
        from slack_sdk.webhook import WebhookClient

        self.client = WebhookClient(url, timeout=max(1, round(timeout)))

    def send(self, event: Event) -> None:
        body = event.body()
        lines = [f"*{event.headline()}*", f"Reading: {body['measured'] or '-'} (threshold {body['threshold'] or '-'})",
                 f"Remediation: {body['remediation']} ({body['remediation_state']})", f"Runbook: {body['runbook_section']}"]
        if event.report_url:
            lines.append(f"<{event.report_url}|Report>")
        answer = self.client.send(text="\n".join(lines), blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}])
        if answer.status_code != 200:
            raise OSError(f"HTTP {answer.status_code}: {excerpt(answer.body, 120)}")


class PagerDuty(Channel):
    """Trigger at or above a severity, resolve when the check passes again; dedup_key: environment/check."""

    name = "pagerduty"

    def __init__(self, routing_key: str, base_url: str, min_severity: str, timeout: float):
        from pagerduty import EventsApiV2Client

        self.client = EventsApiV2Client(routing_key, base_url=base_url)
        # One attempt within the timeout: the client's own retries (up to 6 per status, with back-off) would hold
        # up the end of the run; an event not sent is sent next run.
        self.client.timeout, self.client.max_http_attempts, self.client.max_network_attempts = timeout, 1, 0
        self.client.retry = {}
        self.min_severity = min_severity

    def wants(self, event: Event) -> bool:
        """A page is about the state: while a check flaps, its pages are held (Nagios), and no notice of flapping is
        paged; once it stops, the page follows the state again."""
        return (SEVERITY_RANK.get(event.result.severity, 3) <= SEVERITY_RANK[self.min_severity]
                and event.kind not in ("fixed", "flapping", "stopped flapping"))

    def send(self, event: Event) -> None:
        if event.kind == "resolved":
            self.client.resolve(event.dedup_key)
            return
        body = event.body()
        self.client.trigger(event.headline(), source=f"entmoot-ops/{event.result.env}", dedup_key=event.dedup_key,
                            severity=PAGERDUTY_SEVERITY.get(event.result.severity, "warning"), custom_details=body,
                            links=[{"href": event.report_url, "text": "entmoot-ops report"}] if event.report_url else None)


class Webhook(Channel):
    name = "webhook"

    def __init__(self, url: str, timeout: float):
        import requests

        self.url, self.timeout, self.session = url, timeout, requests.Session()

    def send(self, event: Event) -> None:
        self.session.post(self.url, json=event.body(), timeout=self.timeout).raise_for_status()


def channels(settings: NotifySettings, resolve: Callable[[str, str], str], say: Callable[[str], None]) -> list[Channel]:
    """The configured channels that can be told; ``resolve(reference, key)`` resolves a reference (raises OpsError).
    A channel that cannot be built (its secret unresolved, its client not installed) is skipped in one line: the
    others are still told."""
    def secret(reference: str, key: str) -> str:
        value = resolve(reference, key)
        masker.add(value)  # an error message may quote the URL it failed on
        return value

    configured: list[tuple[str, Callable[[], Channel]]] = []
    if settings.slack_webhook:
        configured.append(("slack", lambda: Slack(secret(settings.slack_webhook, "notify.slack_webhook"), settings.timeout_seconds)))
    if settings.pagerduty_routing_key:
        configured.append(("pagerduty", lambda: PagerDuty(secret(settings.pagerduty_routing_key, "notify.pagerduty_routing_key"),
                                                          settings.pagerduty_events_url, settings.pagerduty_min_severity,
                                                          settings.timeout_seconds)))
    if settings.webhook:
        configured.append(("webhook", lambda: Webhook(secret(settings.webhook, "notify.webhook"), settings.timeout_seconds)))
    found: list[Channel] = []
    for name, build in configured:
        try:
            found.append(build())
        except ModuleNotFoundError as exc:
            say(f"{name}: skipped: no module {exc.name!r}; install the extra: pip install 'entmoot-ops[notify]'")
        except Exception as exc:  # noqa: BLE001 - a notification never costs a verdict: any failure is one line
            say(masker(f"{name}: skipped: {exc.with_fix() if isinstance(exc, OpsError) else one_line(exc)}"))
    return found


def _event(result: CheckResult, told: State, report_url: str | None) -> tuple[Event | None, State]:
    """What to say about a result to a channel last told ``told``, and what it will then have been told."""
    if result.outcome in PROBLEMS:
        return (Event("problem", result, report_url) if told == "ok" else None), "problem"
    if result.outcome in (Outcome.PASS, Outcome.FIXED):
        if told == "problem":
            return Event("resolved", result, report_url), "ok"
        return (Event("fixed", result, report_url) if result.outcome == Outcome.FIXED else None), "ok"
    return None, told  # skipped: not judged, nothing changed


@dataclass
class StateFile:
    """channel -> environment -> check id -> the state that channel was last told; under "flapping", channel ->
    environment -> the checks that channel was told are flapping."""

    path: Path

    def load(self) -> dict[str, dict[str, dict[str, State]]]:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return {}  # unreadable: every channel is told the present state again, which is the safe side

    def save(self, state: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(state, indent=2, sort_keys=True))
        temporary.replace(self.path)


def _told(channel: Channel, event: Event, env: Environment, say: Callable[[str], None]) -> bool:
    """Whether the channel has what it should know of ``event``: sent, or not wanted; a failure is one line, and the
    channel is told again next run."""
    if not channel.wants(event):
        return True
    try:
        channel.send(event)
    except Exception as exc:  # noqa: BLE001 - a notification never costs a verdict
        say(masker(f"notify [{env.name}] {channel.name}: {event.kind} {told_as(event.result)} not sent: {one_line(exc)}"))
        return False
    return True


def told_as(result: CheckResult) -> str:
    """What a channel is told about: a check, or one resource of a check parametrised per replica or host."""
    return f"{result.check_id}/{result.resource}" if result.resource else result.check_id


def _flap(channel: Channel, result: CheckResult, flapping: list[str], env: Environment, say: Callable[[str], None]) -> int:
    """One notice when a check starts flapping and one when it stops, instead of each change; returns the messages
    sent. ``flapping``: what this channel knows is flapping, kept up to date. A check whose history was not read
    this run (the store unavailable) changes nothing: its flapping is unknown, not over."""
    subject = told_as(result)
    started = result.flapping and subject not in flapping
    stopped = result.recalled and not result.flapping and subject in flapping
    if not (started or stopped):
        return 0
    event = Event("flapping" if started else "stopped flapping", result, env.notify.report_url)
    if not _told(channel, event, env, say):
        return 0
    (flapping.append if started else flapping.remove)(subject)
    return int(channel.wants(event))


def notify(env: Environment, results: Iterable[CheckResult], state_file: StateFile, secret: Callable[[str, str], str],
           say: Callable[[str], None]) -> int:
    """Tell each configured channel what changed for this environment; returns how many messages were sent."""
    configured = channels(env.notify, secret, lambda line: say(f"notify [{env.name}] {line}"))
    state, sent = state_file.load(), 0
    mine = [r for r in results if r.env == env.name]
    for channel in configured:
        told = state.setdefault(channel.name, {}).setdefault(env.name, {})
        flapping = state.setdefault("flapping", {}).setdefault(channel.name, {}).setdefault(env.name, [])
        for result in mine:
            if result.outcome == Outcome.SILENCED:
                continue  # a known problem, silenced: nobody is told, and what they were told stays as it was
            sent += _flap(channel, result, flapping, env, say)
            if told_as(result) in flapping:
                continue  # held while it flaps
            event, after = _event(result, told.get(told_as(result), "ok"), env.notify.report_url)
            if event is not None and channel.wants(event):
                if not _told(channel, event, env, say):
                    continue
                sent += 1
            elif event is not None:  # below this channel's bar: it was not told, and so stays as it was
                continue
            told[told_as(result)] = after
    state_file.save(state)
    return sent
