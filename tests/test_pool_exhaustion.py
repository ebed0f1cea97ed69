"""Incident bundle: Database Connection Pool Exhaustion (-m incident): healthy, each symptom with its verdict, and
the termination guardrails (a superuser's session is never touched)."""

from __future__ import annotations

import json
import re
import time

import psycopg

SHORT_TRANSACTIONS = {"[thresholds]\n": "[thresholds]\nidle_in_transaction_max_seconds = 1\n",
                      # the superuser's transaction outlives the remediation: its re-check fails until this deadline
                      "verify_timeout_seconds = 30\n": "verify_timeout_seconds = 4\n"}


def _audit(run) -> list[dict]:
    return [json.loads(line) for line in (run.reports / "audit.jsonl").read_text().splitlines()]


def test_a_healthy_sandbox_passes_the_bundle(sandbox, run_checks):
    run = run_checks("-m", "incident", "-k", "pool_exhaustion or connection_headroom")
    assert run.by_outcome() == {"pass": {"postgres.connections", "postgres.idle-in-transaction", "postgres.idle-sessions",
                                         "postgres.pool-capacity"}}, run.output[-3000:]


def test_open_transactions_fail_and_the_remediation_ends_only_the_applications(sandbox, run_checks, environments):
    directory = environments(replace=SHORT_TRANSACTIONS)
    with sandbox.fault("idle_in_transaction", count=2, superuser=True):
        time.sleep(2)
        run = run_checks("-m", "incident", "--check", "postgres.idle-in-transaction", "--remediate", "--environments-dir", str(directory))
        with psycopg.connect(sandbox.env["ENTMOOT_SANDBOX_PG_PRIMARY_DSN"]) as monitor:
            left = monitor.execute("SELECT usename FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'").fetchall()
    result = run.result("postgres.idle-in-transaction")
    # The superuser's open transaction is still there: the check stays red, and says whose it is.
    assert result.outcome == "fail" and left == [("postgres",)], (left, run.output[-3000:])
    assert "sessions idle in transaction longer than 1 s (pid " in result.message and " postgres " in result.message
    assert "SELECT count(*) FROM pg_stat_activity" in run.output  # the statement that left it open, in the evidence line
    acted = next(e for e in _audit(run) if e["event"] == "acted")
    assert acted["changes"][0]["after"].startswith("2 terminated"), acted


def test_long_idle_sessions_holding_the_connections_fail(sandbox, run_checks, environments):
    directory = environments(replace={"[thresholds]\n": "[thresholds]\nidle_session_max_minutes = 0.02\n"})
    with sandbox.fault("idle_sessions", count=45):
        time.sleep(2)
        run = run_checks("-m", "incident", "--check", "postgres.idle-sessions", "--environments-dir", str(directory))
    failed = run.result("postgres.idle-sessions")
    assert failed.outcome == "fail", run.output[-2000:]
    # The 45 sessions of the fault, and the API pool's own when they too have been idle that long: not judged here.
    held = re.search(r"usable connections held by entmoot_app sessions idle longer than 0.02 min \((\d+) of \d+\)", failed.message)
    assert held and int(held.group(1)) >= 45, failed.message
    assert "threshold < 20.00%" in failed.message and "-> remediation postgres.terminate-idle-sessions" in failed.message


def test_pools_larger_than_the_connections_fail_with_a_sizing_plan(sandbox, run_checks, environments):
    directory = environments(replace={"pool_size = 10 ": "pool_size = 25 "})
    run = run_checks("-m", "incident", "--check", "postgres.pool-capacity", "--environments-dir", str(directory))
    failed = run.result("postgres.pool-capacity")
    assert failed.outcome == "fail", run.output[-2000:]
    assert ("connections the pools of 3 tasks may open (25 + 0 overflow each): measured 75, "
            "threshold <= max_connections minus reserved 57") in failed.message
    assert "a pool of at most 19 per task fits at 3 tasks, 2 at 20" in run.output


def test_without_a_pool_size_the_capacity_is_not_judged(sandbox, run_checks, environments):
    directory = environments(replace={"pool_size = 10  # the sandbox API's psycopg pool (max_size)\n": ""})
    run = run_checks("-m", "incident", "--check", "postgres.pool-capacity", "--environments-dir", str(directory))
    assert run.outcome("postgres.pool-capacity") == "skip"
    assert "postgres.pool_size is not set in sandbox.toml" in run.result("postgres.pool-capacity").message
