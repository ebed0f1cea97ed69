"""Runbook Troubleshooting: High Database CPU (``-m incident``): what the database is busy with.

Where the runbook's SQL is wrong: ``pg_stat_statements.mean_time`` is ``mean_exec_time`` since PostgreSQL 13 (the
probe follows the server's version); its active-query listing would include our own session, walsenders and
autovacuum; and a small table scanned whole is the right plan, so only tables of ``seq_scan_min_rows`` count.
The RDS CPU itself is cpu.high (``-m alerts``).
"""

import pytest

from entmoot_ops.check import check, evidence, expect, expect_none
from entmoot_ops.probes import postgres

SECTION = "high-database-cpu"


def _primary(env):
    return env.clients.postgres(env.config.postgres.primary_dsn, name="primary")


@pytest.mark.incident
@check(id="postgres.long-running-queries", title="No statement running for longer than 5 min", section=SECTION, severity="high",
       remediation="postgres.cancel-long-queries",
       depends=("primary",))
def test_no_long_running_queries(env):
    bound = env.thresholds.long_query_max_seconds
    with _primary(env) as primary:
        running = postgres.long_running_queries(primary, bound)
    evidence("statements running past the bound", running)
    expect_none(f"statements running longer than {bound:g} s", running,
                lambda q: f"pid {q.pid} {q.role} {q.seconds:.0f} s: {q.query[:60]}")


@pytest.mark.incident
@check(id="postgres.seq-scan-tables", title="Large tables are read by index, not by sequential scan", section=SECTION,
       severity="medium", remediation="postgres.suggest-index",
       depends=("primary",))
def test_large_tables_use_indexes(env):
    t = env.thresholds
    with _primary(env) as primary:
        tables = postgres.seq_scan_heavy_tables(primary, t.seq_scan_min, t.seq_scan_min_rows)
        evidence("index usage (least used first)", postgres.index_usage(primary))
    evidence("tables scanned sequentially more than by index", tables)
    expect_none(f"tables of {t.seq_scan_min_rows}+ rows with seq_scan > idx_scan and > {t.seq_scan_min}", tables,
                lambda s: f"{s.table} {s.seq_scan} seq / {s.idx_scan} idx scans, {s.live_rows} rows")


@pytest.mark.incident
@check(id="postgres.top-statements", title="No statement averages more than 1 s (pg_stat_statements)", section=SECTION,
       severity="medium", remediation="postgres.tune-statement",
       depends=("primary",))
def test_top_statements(env):
    with _primary(env) as primary:
        statements = postgres.top_statements(primary)
    if statements is None:
        pytest.skip("pg_stat_statements is not installed: CREATE EXTENSION pg_stat_statements (RDS: it is in "
                    "shared_preload_libraries by default)")
    evidence("pg_stat_statements by total time", statements)
    slowest = max(statements, key=lambda s: s.mean_ms, default=None)
    label = "highest mean time of the top statements" + (f" ({slowest.query[:60]}, {slowest.calls} calls)" if slowest else "")
    expect(label, slowest.mean_ms if slowest else 0.0, "<", env.thresholds.statement_mean_max_ms, unit="ms")
