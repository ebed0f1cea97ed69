"""Weekly and monthly maintenance and query performance (-m weekly, -m monthly): healthy, then each fault the sandbox
injects, seen failing with the measured value and the remediation, and fixed where the remediation acts."""

from __future__ import annotations

import json
import re

import pytest

MAINTENANCE = {"postgres.analyze-fresh", "postgres.vacuum-fresh", "postgres.invalid-indexes", "postgres.xid-wraparound",
               "postgres.sequences", "postgres.redundant-indexes", "jobs.archive-due", "postgres.slow-statements",
               "postgres.spatial-index-used", "postgres.table-bloat", "postgres.reindex-candidates", "postgres.pool-size"}


def _acted(run) -> list[dict]:
    return [e for e in (json.loads(line) for line in (run.reports / "audit.jsonl").read_text().splitlines()) if e["event"] == "acted"]


def test_a_healthy_sandbox_passes(sandbox, run_checks):
    run = run_checks("-m", "weekly or monthly")
    outcomes = run.by_outcome()
    assert MAINTENANCE <= outcomes.get("pass", set()) and set(outcomes) <= {"pass", "skip"}, run.output[-3000:]
    if "skip" in outcomes:  # a young sandbox's statistics cannot call an index unused yet
        assert outcomes["skip"] == {"postgres.unused-indexes"}
        assert "too soon to call them unused" in run.result("postgres.unused-indexes").message


def test_a_stale_table_is_analyzed_and_vacuumed(sandbox, run_checks):
    with sandbox.fault("stale_table"):
        found = run_checks("-m", "weekly", "-k", "statistics_fresh or dead_rows")
        fixed = run_checks("-m", "weekly", "-k", "statistics_fresh or dead_rows", "--remediate")
    analyze = found.result("postgres.analyze-fresh").message
    assert re.search(r"public\.sandbox_upkeep 15000 changes > 2 x 2050, last analyzed 20\d\d-", analyze), found.output[-3000:]
    assert re.search(r"public\.sandbox_upkeep 15000 dead \(4\d%\) > 2 x 4050", found.result("postgres.vacuum-fresh").message)
    assert "VACUUM (ANALYZE) public.sandbox_upkeep;  -- not FULL" in found.output
    assert fixed.outcome("postgres.analyze-fresh") == "fixed" and fixed.outcome("postgres.vacuum-fresh") == "fixed", fixed.output[-3000:]
    assert {e["changes"][0]["action"] for e in _acted(fixed)} == {"ANALYZE public.sandbox_upkeep", "VACUUM (ANALYZE) public.sandbox_upkeep"}


def test_an_invalid_index_is_reindexed_concurrently(sandbox, run_checks):
    with sandbox.fault("invalid_index"):
        run = run_checks("-m", "weekly", "--check", "postgres.invalid-indexes", "--remediate")
    assert run.outcome("postgres.invalid-indexes") == "fixed", run.output[-3000:]
    acted = _acted(run)[0]
    assert "(sandbox_invalid_idx on optimizations): measured 1, threshold == 0" in acted["failure"]
    assert acted["changes"][0]["action"] == "REINDEX INDEX CONCURRENTLY sandbox_invalid_idx"


def test_an_unused_index_is_a_drop_plan_unless_allowed(sandbox, run_checks, environments):
    directory = environments(replace={"[thresholds]\n": "[thresholds]\nunused_index_min_days = 0\n"})
    with sandbox.fault("unused_index"):
        run = run_checks("-m", "monthly", "--check", "postgres.unused-indexes", "--remediate", "--environments-dir", str(directory))
    message = run.result("postgres.unused-indexes").message
    assert "public.sandbox_unused_idx on public.optimizations (" in message and "0 scans since" in message, run.output[-3000:]
    assert "DROP INDEX CONCURRENTLY public.sandbox_unused_idx;  [a plan only" in run.output
    assert "action failed: dropping indexes on sandbox needs postgres.drop_unused_indexes_allowed = true" in run.output


def test_a_redundant_index_is_named_and_dropped_where_allowed(sandbox, run_checks, environments):
    allowed = environments(replace={"pool_size = 10 ": "drop_unused_indexes_allowed = true\npool_size = 10 "})
    with sandbox.fault("redundant_index"):
        run = run_checks("-m", "monthly", "--check", "postgres.redundant-indexes", "--remediate", "--environments-dir", str(allowed))
    assert run.outcome("postgres.redundant-indexes") == "fixed", run.output[-3000:]
    acted = _acted(run)[0]
    assert "(sandbox_redundant_idx covered by idx_buildings_project on buildings)" in acted["failure"]
    assert acted["changes"][0]["action"] == "DROP INDEX CONCURRENTLY sandbox_redundant_idx"


def test_a_sequence_near_its_integer_limit_fails(sandbox, run_checks):
    with sandbox.fault("sequence_near_exhaustion"):
        run = run_checks("-m", "weekly", "--check", "postgres.sequences")
    assert "public.sandbox_counters_id_seq 2000000000 of 2147483647 (93.1%)" in run.result("postgres.sequences").message, run.output[-3000:]


def test_a_slow_statement_breaks_the_first_rule(sandbox, run_checks):
    with sandbox.fault("slow_statement"):
        run = run_checks("-m", "weekly", "--check", "postgres.slow-statements")
    message = run.result("postgres.slow-statements").message
    assert re.search(r"mean 1[12]\d\d ms, max 1[12]\d\d ms over 1 calls: SELECT pg_sleep\(\$1\) /\* sandbox slow statement \*/", message), \
        run.output[-3000:]


def test_a_dropped_gist_index_fails_the_plan_check(sandbox, run_checks):
    with sandbox.fault("gist_dropped"):
        run = run_checks("-m", "weekly", "--check", "postgres.spatial-index-used")
    message = run.result("postgres.spatial-index-used").message
    assert "GiST index on buildings.geom in the plan (indexes none; plan nodes Seq Scan): measured no" in message, run.output[-3000:]
    assert "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_buildings_geom ON buildings USING GIST (geom);" in run.output


def test_old_jobs_are_archived(sandbox, run_checks):
    with sandbox.fault("old_jobs", count=50):
        run = run_checks("-m", "monthly", "--check", "jobs.archive-due", "--remediate")
    assert run.outcome("jobs.archive-due") == "fixed", run.output[-3000:]
    acted = _acted(run)[0]
    assert re.search(r"finished jobs older than 90 days \(oldest completed 20\d\d-\d\d-\d\d\): measured 50, threshold == 0", acted["failure"])
    assert acted["changes"][0]["after"] == "50 moved to optimization_jobs_archive"


@pytest.mark.parametrize("marker", ["weekly", "monthly"])
def test_each_maintenance_check_is_selectable_by_its_marker(sandbox, run_checks, marker):
    run = run_checks("-m", marker, "--collect-only", "-q")
    assert run.returncode == 0 and "checks/test_" in run.output


def test_the_pool_size_is_read_from_the_task_definition_and_judged_against_cores_and_connections(sandbox, run_checks, environments):
    from_task = environments(replace={"pool_size = 10  # the sandbox API's psycopg pool (max_size)\n": ""})
    run = run_checks("-m", "weekly", "--check", "postgres.pool-size", "--environments-dir", str(from_task))
    assert run.outcome("postgres.pool-size") == "pass", run.output[-3000:]
    oversized = environments(replace={"pool_size = 10 ": "pool_size = 40 "})
    run = run_checks("-m", "weekly", "--check", "postgres.pool-size", "--environments-dir", str(oversized))
    message = run.result("postgres.pool-size").message
    assert re.search(r"connections per task \(pool 40 \+ overflow 0\) against usable connections \d+ / \d+ running tasks: measured 40, "
                     r"threshold <= \d+ -> remediation postgres.resize-pool", message), run.output[-3000:]


def test_sequences_the_monitoring_role_cannot_read_are_an_error_with_the_grant(sandbox, run_checks):
    import psycopg

    with psycopg.connect(sandbox.env["ENTMOOT_SANDBOX_PG_ADMIN_DSN"], autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS sandbox_private")
        conn.execute("CREATE SEQUENCE IF NOT EXISTS sandbox_private.hidden_seq")
        try:
            run = run_checks("-m", "weekly", "--check", "postgres.sequences")
        finally:
            conn.execute("DROP SCHEMA sandbox_private CASCADE")
    result = run.result("postgres.sequences")
    assert result.junit == "error" and "1 sequences this role may not read (sandbox_private.hidden_seq)" in result.message, run.output[-3000:]
    assert "GRANT SELECT ON ALL SEQUENCES" in result.fix


def test_a_bloated_table_and_its_index_are_estimated_and_the_index_rebuilt(sandbox, run_checks):
    with sandbox.fault("bloated_table"):
        run = run_checks("-m", "weekly or monthly", "--check", "postgres.table-bloat", "--check", "postgres.reindex-candidates",
                         "--remediate")
    table = run.result("postgres.table-bloat").message
    assert re.search(r"public\.sandbox_bloat [6-9]\d% of \d+ bytes, statistical estimate \(pg_stats widths, PG 13\+ heap layout\)", table), \
        run.output[-3000:]
    assert run.outcome("postgres.table-bloat") == "fail" and "never runs it" in run.output  # VACUUM FULL is a plan for a person
    assert run.outcome("postgres.reindex-candidates") == "fixed", run.output[-3000:]
    acted = _acted(run)[0]
    assert re.search(r"public\.sandbox_bloat_pkey on public\.sandbox_bloat [6-9]\d% of \d+ bytes", acted["failure"])
    assert acted["changes"][0]["action"] == "REINDEX INDEX CONCURRENTLY public.sandbox_bloat_pkey"


def test_an_index_read_only_on_the_replica_is_not_unused(sandbox, run_checks, environments):
    import time

    import psycopg

    directory = environments(replace={"[thresholds]\n": "[thresholds]\nunused_index_min_days = 0\n"})
    with sandbox.fault("unused_index"), psycopg.connect(sandbox.env["ENTMOOT_SANDBOX_PG_REPLICA1_DSN"], autocommit=True) as replica:
        deadline = time.monotonic() + 30
        while replica.execute("SELECT to_regclass('public.sandbox_unused_idx')").fetchone()[0] is None and time.monotonic() < deadline:
            time.sleep(0.2)  # until the replica has replayed the CREATE INDEX
        replica.execute("SET enable_seqscan = off")
        plan = "\n".join(row[0] for row in replica.execute("EXPLAIN SELECT count(*) FROM optimizations WHERE score > 0.5"))
        replica.execute("SELECT count(*) FROM optimizations WHERE score > 0.5")
        replica.execute("SELECT pg_stat_force_next_flush()")
        replica.close()  # a backend's statistics are flushed when it ends
        time.sleep(0.5)
        run = run_checks("-m", "monthly", "--check", "postgres.unused-indexes", "--environments-dir", str(directory))
    assert "sandbox_unused_idx" in plan
    assert "sandbox_unused_idx" not in run.result("postgres.unused-indexes").message, run.output[-3000:]


@pytest.mark.parametrize(("fault", "table", "workload"), [
    ("bloated_table", "sandbox_bloat", []), ("stale_table", "sandbox_upkeep", []),
    ("sequence_near_exhaustion", "sandbox_counters", []),
    ("seq_scans", "sandbox_scans", ["SELECT count(*) FROM sandbox_scans WHERE kind = $1"])])
def test_a_faults_own_setup_is_no_statement_of_the_application(sandbox, fault, table, workload):
    """On a slow machine the setup's bulk writes (200,000 rows for bloated_table) take over a second: recorded as the
    application's, postgres.slow-statements would fail on them long after the fault is undone. Only the workload a
    fault is about is the application's, and its undo forgets that too."""
    import psycopg

    from entmoot_ops.probes import maintenance

    def recorded() -> list[str]:
        with psycopg.connect(sandbox.env["ENTMOOT_SANDBOX_PG_PRIMARY_DSN"], autocommit=True) as primary:
            every_statement = maintenance.slow_statements(primary, ("entmoot_app",), mean_above_ms=-1, frequent_mean_above_ms=-1,
                                                          frequent_min_calls=0)
            # and beyond the probe's top 20, as either role a fault works as (the remediations' own statements may be there)
            as_sandbox = primary.execute("SELECT query FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid "
                                         "WHERE r.rolname IN ('entmoot_app', 'postgres') AND query LIKE %s", (f"%{table}%",)).fetchall()
        return sorted({s.query for s in every_statement if table in s.query} | {row[0] for row in as_sandbox})

    with sandbox.fault(fault):
        assert recorded() == workload
    assert recorded() == []
