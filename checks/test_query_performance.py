"""Runbook Query Performance Tuning and Query Optimization (-m weekly): the two slow-statement rules over
pg_stat_statements (``mean_exec_time`` on PostgreSQL 13+, ``mean_time`` before), and the spatial query's plan."""

import pytest

from entmoot_ops.check import check, evidence, expect, expect_none
from entmoot_ops.probes import maintenance


@pytest.mark.weekly
@check(id="postgres.slow-statements", title="No statement of the application slower than the runbook's rules", severity="medium",
       section="query-performance-tuning", remediation="postgres.tune-statement",
       depends=("primary",))
def test_no_slow_statement(env):
    t, settings = env.thresholds, env.config.postgres
    with env.clients.postgres(settings.primary_dsn, name="primary") as primary:
        slow = maintenance.slow_statements(primary, (settings.application_role,), mean_above_ms=t.slow_statement_mean_ms,
                                           frequent_mean_above_ms=t.frequent_statement_mean_ms,
                                           frequent_min_calls=t.frequent_statement_min_calls)
    if slow is None:
        pytest.skip("pg_stat_statements is not installed: add it to shared_preload_libraries (RDS: the parameter group), "
                    "then CREATE EXTENSION pg_stat_statements")
    evidence("statements breaking a rule, by total time", slow)
    expect_none(f"statements of {settings.application_role} with mean > {t.slow_statement_mean_ms:g} ms, or mean > "
                f"{t.frequent_statement_mean_ms:g} ms over more than {t.frequent_statement_min_calls} calls", slow,
                lambda s: f"mean {s.mean_ms:.0f} ms, max {s.max_ms:.0f} ms over {s.calls} calls: {s.query}")


@pytest.mark.weekly
@check(id="postgres.spatial-index-used", title="The spatial query's plan uses the GiST index", severity="high",
       section="query-optimization", remediation="postgres.create-spatial-index",
       depends=("primary",))
def test_spatial_query_uses_gist(env):
    settings = env.config.postgres
    table, column = settings.spatial_column.rsplit(".", 1)
    with env.clients.postgres(settings.primary_dsn, name="primary") as primary:
        gist = maintenance.gist_indexes(primary, table, column)
        planned = maintenance.plan(primary, settings.spatial_query)
    evidence("plan (EXPLAIN, not executed)", planned)
    evidence(f"GiST indexes on {settings.spatial_column}", gist)
    used = [index for index in gist if planned.uses(index)]
    expect(f"GiST index on {settings.spatial_column} in the plan (indexes {', '.join(gist) or 'none'}; plan nodes "
           f"{', '.join(planned.node_types)})", bool(used), "==", True)
