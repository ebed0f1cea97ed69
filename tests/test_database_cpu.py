"""Incident bundle: High Database CPU (-m incident): healthy, long-running statements (cancelled, a superuser's never),
sequential scans of a large table with an index suggestion, and pg_stat_statements' slowest statement."""

from __future__ import annotations

import json
import time

import psycopg

SHORT = {"[thresholds]\n": "[thresholds]\nlong_query_max_seconds = 1\n",
         "pool_size = 10 ": "cancel_grace_seconds = 1\npool_size = 10 ",
         # a superuser's statement outlives the remediation: its re-check fails until this deadline
         "verify_timeout_seconds = 30\n": "verify_timeout_seconds = 4\n"}


def _audit(run) -> list[dict]:
    return [json.loads(line) for line in (run.reports / "audit.jsonl").read_text().splitlines()]


def test_a_healthy_sandbox_passes_the_bundle(sandbox, run_checks):
    run = run_checks("-m", "incident", "-k", "long_running or large_tables or top_statements")
    assert run.by_outcome() == {"pass": {"postgres.long-running-queries", "postgres.seq-scan-tables", "postgres.top-statements"}}, \
        run.output[-3000:]


def test_long_statements_are_cancelled_but_never_a_superusers(sandbox, run_checks, environments):
    with sandbox.fault("long_query", seconds=600, superuser=True):
        time.sleep(2)
        run = run_checks("-m", "incident", "--check", "postgres.long-running-queries", "--remediate",
                         "--environments-dir", str(environments(replace=SHORT)))
        with psycopg.connect(sandbox.env["ENTMOOT_SANDBOX_PG_PRIMARY_DSN"]) as monitor:
            running = monitor.execute("SELECT usename FROM pg_stat_activity WHERE state = 'active' "
                                      "AND query LIKE '%sandbox long query%' AND pid <> pg_backend_pid()").fetchall()
    result = run.result("postgres.long-running-queries")
    assert running == [("postgres",)], running  # the application's statement was cancelled; the superuser's runs on
    assert result.outcome == "fail" and "statements running longer than 1 s (pid " in result.message, run.output[-3000:]
    assert "pg_sleep" in result.message and " postgres " in result.message
    acted = next(e for e in _audit(run) if e["event"] == "acted")
    assert acted["changes"][0]["after"].startswith("1 cancelled"), acted


def test_a_large_table_scanned_sequentially_fails_with_an_index_suggestion(sandbox, run_checks):
    with sandbox.fault("seq_scans"):
        run = run_checks("-m", "incident", "--check", "postgres.seq-scan-tables")
    failed = run.result("postgres.seq-scan-tables")
    assert failed.outcome == "fail", run.output[-3000:]
    assert "public.sandbox_scans 1100 seq / 0 idx scans" in failed.message
    assert "CREATE INDEX CONCURRENTLY IF NOT EXISTS sandbox_scans_kind_idx ON public.sandbox_scans (kind);" in run.output
    assert "never run by this suite" in run.output


def test_the_slowest_statement_is_named(sandbox, run_checks, environments):
    directory = environments(replace={"[thresholds]\n": "[thresholds]\nstatement_mean_max_ms = 0.001\n"})
    run = run_checks("-m", "incident", "--check", "postgres.top-statements", "--environments-dir", str(directory))
    failed = run.result("postgres.top-statements")
    assert failed.outcome == "fail" and "highest mean time of the top statements (" in failed.message, run.output[-2000:]
    assert "threshold < 0.001 ms" in failed.message, failed.message
