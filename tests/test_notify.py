"""Notifications on state change: Slack, PagerDuty Events API v2 and a JSON webhook, against a real HTTP server on
loopback that records what it receives (the vendors' clients run unpatched)."""

from __future__ import annotations

import json

from conftest import settle
from entmoot_ops import notify
from entmoot_ops.config import load_environment
from entmoot_ops.errors import ConfigError
from entmoot_ops.results import CheckResult
from loopback_sink import Sink

SLACK, WEBHOOK = "/services/T000/B000/slack-token-1234567890", "/hooks/entmoot-webhook-secret"
ROUTING_KEY = "R0UTINGKEY0123456789abcdef012345"


def notify_settings(sink: Sink, state) -> str:
    """``state`` None: the default state file, <reports>/notify-state.json."""
    return (f'[notify]\nslack_webhook = "env:ENTMOOT_TEST_SLACK"\npagerduty_routing_key = "env:ENTMOOT_TEST_PD_KEY"\n'
            f'pagerduty_events_url = "{sink.url}"\nwebhook = "env:ENTMOOT_TEST_WEBHOOK"\n'
            f'report_url = "https://ci.entmoot.internal/reports/morning"\n' + (f'state_file = "{state}"\n' if state else "") + "\n")


def notify_secrets(sink: Sink) -> dict[str, str]:
    return {"ENTMOOT_TEST_SLACK": sink.url + SLACK, "ENTMOOT_TEST_PD_KEY": ROUTING_KEY, "ENTMOOT_TEST_WEBHOOK": sink.url + WEBHOOK,
            **sink.trust}


def _result(outcome: str, check: str = "rds.free-storage", severity: str = "critical", flapping: bool = False,
            resource: str = "", recalled: bool = True) -> CheckResult:
    return CheckResult(flapping=flapping, resource=resource, recalled=recalled, check_id=check, title="RDS free storage above 10%",
                       env="sandbox", nodeid=f"checks/x.py::{check}",
                       outcome=outcome, severity=severity, section="alert-disk-space-low-10", measured="5.00%",
                       threshold="> 10.00%", remediation="rds.increase-storage", remediation_state="planned",
                       message="free storage: measured 5.00%, threshold > 10.00% -> remediation rds.increase-storage")


def _notify(environment, sink, state, results, said):
    secrets = notify_secrets(sink)
    return notify.notify(environment, results, notify.StateFile(state), lambda ref, key: secrets[ref[4:]], said.append)


def test_a_new_problem_triggers_once_and_a_pass_resolves_on_every_channel(environments, sink, tmp_path):
    state = tmp_path / "notify-state.json"
    environment = load_environment("sandbox", environments(replace={"[thresholds]\n": notify_settings(sink, state) + "[thresholds]\n"}))
    said: list[str] = []
    assert _notify(environment, sink, state, [_result("fail")], said) == 3
    assert _notify(environment, sink, state, [_result("fail")], said) == 0  # unchanged: nobody is told twice
    assert _notify(environment, sink, state, [_result("error")], said) == 0  # still a problem
    assert _notify(environment, sink, state, [_result("skip")], said) == 0  # not judged: nothing changed
    assert _notify(environment, sink, state, [_result("pass")], said) == 3
    assert _notify(environment, sink, state, [_result("pass")], said) == 0
    assert said == []
    slack, pagerduty, hook = sink.on("/services/"), sink.on("/v2/enqueue"), sink.on("/hooks/")
    assert [m.body["text"].splitlines()[0] for m in slack] == ["*FAIL rds.free-storage [sandbox]: RDS free storage above 10%*",
                                                                "*RESOLVED rds.free-storage [sandbox]: RDS free storage above 10%*"]
    assert "Reading: 5.00% (threshold > 10.00%)" in slack[0].body["text"] and "rds.increase-storage" in slack[0].body["text"]
    assert "<https://ci.entmoot.internal/reports/morning|Report>" in slack[0].body["text"]
    assert [(m.body["event_action"], m.body["dedup_key"]) for m in pagerduty] == [("trigger", "sandbox/rds.free-storage"),
                                                                                  ("resolve", "sandbox/rds.free-storage")]
    assert pagerduty[0].body["payload"]["severity"] == "critical" and pagerduty[0].body["routing_key"] == ROUTING_KEY
    assert [(m.body["event"], m.body["check"], m.body["environment"]) for m in hook] == [
        ("problem", "rds.free-storage", "sandbox"), ("resolved", "rds.free-storage", "sandbox")]


def test_below_the_paging_severity_only_chat_and_webhook_are_told_and_a_fix_is_news(environments, sink, tmp_path):
    state = tmp_path / "notify-state.json"
    environment = load_environment("sandbox", environments(replace={"[thresholds]\n": notify_settings(sink, state) + "[thresholds]\n"}))
    said: list[str] = []
    assert _notify(environment, sink, state, [_result("fail", "redis.hit-rate", "medium")], said) == 2
    assert _notify(environment, sink, state, [_result("fixed")], said) == 2  # fixed by --remediate: chat and webhook hear it
    assert not sink.on("/v2/enqueue")
    assert sink.on("/hooks/")[-1].body["event"] == "fixed"


def test_a_flapping_check_is_told_once_when_it_starts_and_once_when_it_stops_instead_of_each_change(environments, sink, tmp_path):
    state = tmp_path / "notify-state.json"
    environment = load_environment("sandbox", environments(replace={"[thresholds]\n": notify_settings(sink, state) + "[thresholds]\n"}))
    said: list[str] = []
    assert _notify(environment, sink, state, [_result("fail")], said) == 3
    # It flaps: chat and webhook hear it once; pages are held (PagerDuty is about the state, not its changes).
    assert _notify(environment, sink, state, [_result("pass", flapping=True)], said) == 2
    for outcome in ("fail", "pass", "fail", "pass"):
        assert _notify(environment, sink, state, [_result(outcome, flapping=True)], said) == 0
    # It stops, passing: one notice that it stopped, and the page still open from before resolved.
    assert _notify(environment, sink, state, [_result("pass")], said) == 2 + 3
    assert said == []
    assert [m.body["text"].splitlines()[0].split(" rds")[0] for m in sink.on("/services/")] == [
        "*FAIL", "*FLAPPING", "*STOPPED FLAPPING", "*RESOLVED"]
    assert [m.body["event"] for m in sink.on("/hooks/")] == ["problem", "flapping", "stopped flapping", "resolved"]
    assert [m.body["event_action"] for m in sink.on("/v2/enqueue")] == ["trigger", "resolve"]


def test_each_replica_is_told_of_on_its_own_a_silenced_check_tells_nobody_and_an_unread_history_changes_nothing(
        environments, sink, tmp_path):
    state = tmp_path / "notify-state.json"
    environment = load_environment("sandbox", environments(replace={"[thresholds]\n": notify_settings(sink, state) + "[thresholds]\n"}))
    said: list[str] = []
    lag = "replication.lag"
    # One replica lagging, the other not: one problem, told once, and nothing on the next run.
    assert _notify(environment, sink, state, [_result("fail", lag, resource="replica1"), _result("pass", lag, resource="replica2")], said) == 3
    assert _notify(environment, sink, state, [_result("fail", lag, resource="replica1"), _result("pass", lag, resource="replica2")], said) == 0
    assert sink.on("/v2/enqueue")[0].body["dedup_key"] == "sandbox/replication.lag/replica1"
    # One flapping, the other not: one notice when it starts, none on the next run.
    steady = _result("pass", lag, resource="replica2")
    assert _notify(environment, sink, state, [_result("pass", lag, resource="replica1", flapping=True), steady], said) == 2
    assert _notify(environment, sink, state, [_result("fail", lag, resource="replica1", flapping=True), steady], said) == 0
    # The history unread (the store unavailable): flapping is unknown, not over; nothing is said of it.
    assert _notify(environment, sink, state, [_result("pass", lag, resource="replica1", recalled=False)], said) == 0
    # A silenced problem tells nobody, flapping or not.
    assert _notify(environment, sink, state, [_result("silenced", "redis.memory"), _result("silenced", "rds.free-storage", flapping=True)], said) == 0
    assert said == []


def test_a_failed_send_is_one_line_and_is_told_again_next_run(environments, sink, tmp_path):
    state = tmp_path / "notify-state.json"
    environment = load_environment("sandbox", environments(replace={"[thresholds]\n": notify_settings(sink, state) + "[thresholds]\n"}))
    said: list[str] = []
    sink.status = 500
    assert _notify(environment, sink, state, [_result("fail")], said) == 0
    assert len(said) == 3 and all("\n" not in line and "not sent" in line for line in said), said
    assert not any(secret in line for line in said for secret in (SLACK, WEBHOOK, ROUTING_KEY))
    sink.status = None
    assert _notify(environment, sink, state, [_result("fail")], said) == 3


def test_a_channel_whose_secret_is_missing_is_skipped_in_one_line_and_the_others_are_told(environments, sink, tmp_path):
    state = tmp_path / "notify-state.json"
    environment = load_environment("sandbox", environments(replace={"[thresholds]\n": notify_settings(sink, state) + "[thresholds]\n"}))
    secrets = notify_secrets(sink)

    def resolve(reference: str, key: str) -> str:
        if reference == "env:ENTMOOT_TEST_WEBHOOK":
            raise ConfigError(f"{key}: ENTMOOT_TEST_WEBHOOK is not set", fix="export ENTMOOT_TEST_WEBHOOK")
        return secrets[reference[4:]]

    said: list[str] = []
    assert notify.notify(environment, [_result("fail")], notify.StateFile(state), resolve, said.append) == 2
    assert said == ["notify [sandbox] webhook: skipped: notify.webhook: ENTMOOT_TEST_WEBHOOK is not set "
                    "(export ENTMOOT_TEST_WEBHOOK)"]
    assert len(sink.on("/services/")) == 1 and len(sink.on("/v2/enqueue")) == 1 and not sink.on("/hooks/")
    assert "webhook" not in json.loads(state.read_text())  # never told: told once its secret is there


def test_a_run_notifies_on_change_never_lets_a_secret_out_and_keeps_its_exit_code(sandbox, run_checks, environments, sink, tmp_path):
    state = tmp_path / "notify-state.json"
    directory = environments(replace={"[thresholds]\n": notify_settings(sink, state) + "[thresholds]\n"})
    secrets = notify_secrets(sink)

    def run():
        return run_checks("-m", "morning", "-k", "free_storage", "--environments-dir", str(directory), env=secrets)

    with sandbox.fault("rds_low_storage", free_ratio=0.05):
        settle(sandbox)
        failing, again = run(), run()
    settle(sandbox)
    settle(sandbox)  # a period holding no reading from before the undo
    passing = run()
    assert (failing.returncode, again.returncode, passing.returncode) == (1, 1, 0)
    assert [m.body.get("event_action") for m in sink.on("/v2/enqueue")] == ["trigger", "resolve"]
    assert [m.body["event"] for m in sink.on("/hooks/")] == ["problem", "resolved"]
    assert len(sink.on("/services/")) == 2
    hidden = [*sandbox.state["secrets"], SLACK, WEBHOOK]
    for message in sink.received:
        text = message.raw.replace(json.dumps(ROUTING_KEY), "")  # the Events API carries its routing key by design
        assert ROUTING_KEY not in text and not any(secret in text for secret in hidden), message.path


def test_a_notification_that_cannot_be_sent_does_not_change_the_verdict(sandbox, run_checks, environments, tmp_path):
    closed = Sink(tmp_path)
    closed.close()  # nothing listens there any more
    state = tmp_path / "notify-state.json"
    directory = environments(replace={"[thresholds]\n": notify_settings(closed, state) + "[thresholds]\n"})
    with sandbox.fault("rds_low_storage", free_ratio=0.05):
        settle(sandbox)
        run = run_checks("-m", "morning", "-k", "free_storage", "--environments-dir", str(directory), env=notify_secrets(closed))
    assert run.returncode == 1 and run.outcome("rds.free-storage") == "fail"
    lines = [line for line in run.output.splitlines() if line.startswith("notify [sandbox]")]
    assert len(lines) == 3 and all("not sent" in line for line in lines), run.output[-2000:]



def test_a_channel_whose_secret_is_missing_fails_no_preflight(sandbox, run_checks, environments, sink):
    """It made the preflight fail, and so every check and experiment of the run: `--check chaos.kill-redis` was
    `not run: the preflight of sandbox failed`. Now the checks run, and the channel alone is skipped, in one line."""
    directory = environments(replace={"[thresholds]\n": notify_settings(sink, None) + "[thresholds]\n"})
    secrets = {name: value for name, value in notify_secrets(sink).items() if name != "ENTMOOT_TEST_WEBHOOK"}
    run = run_checks("-m", "morning", "--check", "api.health", "--environments-dir", str(directory), env=secrets)
    assert run.returncode == 0 and run.outcome("api.health") == "pass", run.output[-3000:]
    assert "preflight [sandbox] ok" in run.output and "FAILED" not in run.output, run.output[-3000:]
    assert [line for line in run.output.splitlines() if "ENTMOOT_TEST_" in line] == [
        "notify [sandbox] webhook: skipped: notify.webhook: ENTMOOT_TEST_WEBHOOK is not set (export ENTMOOT_TEST_WEBHOOK)"]
