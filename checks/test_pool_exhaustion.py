"""Runbook Troubleshooting: Database Connection Pool Exhaustion (``-m incident``).

Where the runbook's shell is wrong: idleness is measured from ``state_change`` (its ``query_start`` is when the
last query began, so a session busy for an hour and idle for a minute would count as idle for an hour), and the
connections are judged against ``max_connections`` minus the reserved ones, not against a pool size alone.
"""

import pytest

from entmoot_ops.check import check, evidence, expect, expect_none
from entmoot_ops.probes import ecs, postgres

SECTION = "database-connection-pool-exhaustion"


@pytest.mark.incident
@check(id="postgres.idle-in-transaction", title="No session idle inside an open transaction for long", section=SECTION,
       severity="high", remediation="postgres.terminate-idle-in-transaction",
       depends=("primary",))
def test_no_long_idle_in_transaction(env):
    bound = env.thresholds.idle_in_transaction_max_seconds
    with env.clients.postgres(env.config.postgres.primary_dsn, name="primary") as primary:
        sessions = postgres.idle_in_transaction(primary, bound)
    evidence("sessions idle in transaction", sessions)
    expect_none(f"sessions idle in transaction longer than {bound:g} s", sessions,
                lambda s: f"pid {s.pid} {s.role} {s.seconds:.0f} s: {s.query[:60]}")


@pytest.mark.incident
@check(id="postgres.idle-sessions", title="Sessions idle for longer than 30 min hold few connections", section=SECTION,
       severity="medium", remediation="postgres.terminate-idle-sessions",
       depends=("primary",))
def test_long_idle_sessions_hold_few_connections(env):
    t, role = env.thresholds, env.config.postgres.application_role
    with env.clients.postgres(env.config.postgres.primary_dsn, name="primary") as primary:
        idle = postgres.idle_sessions(primary, role, t.idle_session_max_minutes * 60)
        usable = postgres.connection_usage(primary).usable
    evidence(f"sessions of {role} idle longer than {t.idle_session_max_minutes:g} min (since state_change)", idle)
    expect(f"usable connections held by {role} sessions idle longer than {t.idle_session_max_minutes:g} min ({len(idle)} of {usable})",
           len(idle) / usable, "<", t.idle_sessions_max_ratio, unit="%")


@pytest.mark.incident
@check(id="postgres.pool-capacity", title="The application's pools fit in the database's connections", section=SECTION,
       severity="high", remediation="postgres.resize-pool",
       depends=("primary", "aws"))
def test_pools_fit_in_the_connections(env):
    settings = env.config.postgres
    if settings.pool_size is None:
        pytest.skip(f"postgres.pool_size is not set in {env.config.name}.toml: the pools' demand cannot be judged")
    per_task = settings.pool_size + settings.pool_max_overflow
    tasks = ecs.service_state(env.clients).desired
    with env.clients.postgres(settings.primary_dsn, name="primary") as primary:
        usage = postgres.connection_usage(primary)
    evidence("pool demand", {"per_task": per_task, "tasks": tasks, "usable_connections": usage.usable,
                             "at_ecs_max_count": per_task * env.config.ecs.max_count, "connections_now": usage.by_database_user_state})
    expect(f"connections the pools of {tasks} tasks may open ({settings.pool_size} + {settings.pool_max_overflow} overflow each)",
           per_task * tasks, "<=", usage.usable, against="max_connections minus reserved")
