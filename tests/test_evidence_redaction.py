"""Evidence without secrets, end to end: every kind of secret and personal datum, fed through every path by which
the suite copies data out of an environment (the API's logs in CloudWatch, GCP and Azure, pg_stat_statements,
pg_stat_activity, Redis keys, the /health body, CloudTrail), is found in no output of the run (terminal, junit,
summary.json, Allure results and attachments, metrics, the audit log, notifications), and its marker is."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import redis
from psycopg import sql

from conftest import Run, api_traffic, settle
from entmoot_ops.sandbox import aws as sandbox_aws
from test_log_backends import _azure_settings, _gcp_settings, _line, azure, gcp  # noqa: F401 - fixtures
from test_notify import notify_secrets, notify_settings
from test_redaction import KINDS

# What an environment writes: one of each kind, and a client's public address.
LINE = " ; ".join(text for text, _, _ in KINDS.values()) + " ; client 203.0.113.77"
SECRETS = [secret for _, secret, _ in KINDS.values()] + ["s3cr3tSIG", "alice@", "203.0.113.77"]
MARKERS = {marker for _, _, marker in KINDS.values()} | {"[redacted:ipv4]"}
SSO_USER = f"arn:aws:sts::{sandbox_aws.ACCOUNT}:assumed-role/AWSReservedSSO_Admin/alice@example.com"
REDIS_KEY = "constraints:alice@example.com:token=tok_9f8e7d6c5b4a"
CHECKS = ("api.health", "api.error-rate", "postgres.top-statements", "postgres.idle-in-transaction", "redis.ttl-policy",
          "security.unusual-activity")


def _outputs(run: Run, *more: Path) -> dict[str, str]:
    """Every file the run wrote, its terminal, and what else it wrote elsewhere (metrics, notifications' state)."""
    found = {"terminal": run.output}
    for root in (run.reports, *more):
        for path in (p for p in root.rglob("*") if p.is_file()):
            found[str(path)] = path.read_bytes().decode("utf-8", "replace")
    return found


def _assert_redacted(outputs: dict[str, str], markers: set[str]) -> None:
    leaks = {name: [s for s in SECRETS if s in text] for name, text in outputs.items()}
    assert not {name: found for name, found in leaks.items() if found}, "secrets in the outputs"
    everything = "\n".join(outputs.values())
    assert {m for m in markers if m not in everything} == set(), "markers missing"


@contextlib.contextmanager
def _statements_with_literals(admin_dsn: str) -> Iterator[None]:
    """A utility statement (pg_stat_statements keeps its text before PostgreSQL 16) slow enough to be the slowest
    (0.4 s: below the default threshold, so that what stays in pg_stat_statements fails no later test), and a session
    idle in a transaction whose last statement carries its literals (pg_stat_activity)."""
    body = f"BEGIN PERFORM pg_sleep(0.4); PERFORM '{LINE}'; END"
    with psycopg.connect(admin_dsn, autocommit=True) as admin, psycopg.connect(admin_dsn) as idle:
        for _ in range(3):
            admin.execute(sql.SQL("DO {}").format(sql.Literal(body)))
        idle.execute(sql.SQL("SELECT {}").format(sql.Literal(LINE)))  # the transaction stays open
        yield


def test_no_secret_reaches_any_output_from_any_evidence_path(sandbox, run_checks, environments, sink, tmp_path):
    textfiles = tmp_path / "textfiles"
    thresholds = "[thresholds]\nidle_in_transaction_max_seconds = 1\nstatement_mean_max_ms = 300\n"
    directory = environments(replace={"[thresholds]\n": notify_settings(sink, tmp_path / "notify-state.json")
                                      + f'[metrics]\ntextfile_dir = "{textfiles}"\n\n' + thresholds})
    cache = redis.Redis.from_url(sandbox.env["ENTMOOT_SANDBOX_REDIS_URL"], password=sandbox.env["ENTMOOT_SANDBOX_REDIS_PASSWORD"])
    cache.set(REDIS_KEY, "{}")  # no TTL: it breaks the policy of its prefix and is named
    try:
        with (sandbox.fault("api_errors", rate=0.5, message=LINE), sandbox.fault("api_degraded", detail=LINE),
              sandbox.fault("cloudtrail_event", kind="console_no_mfa", principal=SSO_USER),
              _statements_with_literals(sandbox.env["ENTMOOT_SANDBOX_PG_ADMIN_DSN"])):
            api_traffic(sandbox, 30)
            run = run_checks("-m", "morning or evening or incident or weekly", *(a for c in CHECKS for a in ("--check", c)),
                             "--evidence", "all", "--environments-dir", str(directory), env=notify_secrets(sink), charts=True)
    finally:
        cache.delete(REDIS_KEY)
        settle(sandbox)
    # Each path was read, and failed where its fault breaks it: the evidence is there, redacted.
    assert {c for c in CHECKS if run.outcome(c) == "fail"} >= {"api.health", "postgres.top-statements", "postgres.idle-in-transaction",
                                                              "redis.ttl-policy", "security.unusual-activity"}, run.output[-3000:]
    outputs = _outputs(run, textfiles, tmp_path / "notify-state.json")
    _assert_redacted(outputs, MARKERS)
    for name in ("terminal", str(run.reports / "junit.xml"), str(run.reports / "summary.json")):
        assert "[redacted:" in outputs[name], name
    assert any("[redacted:" in text for name, text in outputs.items() if "allure-results" in name)
    # What the checks showed of each path, as its reader sees it: placeholders, masked ids, markers.
    # (The slowest statement may be another test's on this worker's sandbox; the idle session's is always named.)
    assert re.search(r"\b(DO|SELECT) \$1\b", outputs["terminal"] + outputs[str(run.reports / "summary.json")])
    assert "constraints:[redacted:email]:token=[redacted:token]" in outputs[str(run.reports / "summary.json")]
    assert "assumed-role/AWSReservedSSO_Admin/[redacted:email]" in outputs[str(run.reports / "summary.json")]
    # Notifications: every payload of every channel.
    assert sink.received and all(not any(s in m.raw for s in SECRETS) for m in sink.received)
    assert any("[redacted:" in m.raw for m in sink.received)


@pytest.mark.parametrize("backend", ["gcp", "azure"])
def test_log_lines_from_gcp_and_azure_are_redacted_in_every_output(backend, request, sandbox, run_checks, environments):
    server = request.getfixturevalue(backend)
    now = datetime.now(UTC) - timedelta(minutes=2)  # inside the window judged, which ends with the last whole period
    for i in range(5):
        line = _line(700 + i, level="ERROR", path=f"/api/users/alice@example.com?token=tok_9f8e7d6c5b4a&n={i}", error=LINE)
        server.add(now, line) if backend == "gcp" else server.add("ContainerAppConsoleLogs_CL", now, line)
    settings = _gcp_settings(server) if backend == "gcp" else _azure_settings(server)
    directory = environments(replace={'[logs]\ngroup = "/ecs/entmoot-sandbox"\n': settings})
    env = {"GOOGLE_APPLICATION_CREDENTIALS": str(server.credentials_file(directory))} if backend == "gcp" else server.environment()
    run = run_checks("-m", "morning", "--check", "api.error-rate", "--evidence", "all", "--environments-dir", str(directory), env=env)
    outputs = _outputs(run)
    evidence = "\n".join(text for name, text in outputs.items() if "allure-results" in name)
    assert "5x " in evidence or '"count": 5' in evidence, run.output[-3000:]  # the log lines were read and grouped
    _assert_redacted(outputs, MARKERS)
