"""PostgreSQL remediations (runbook Database Connection Pool Exhaustion): terminate the application's long-idle
sessions (solution 2) or its sessions idle inside an open transaction, and size the pools (a plan).

Termination only ever touches client sessions of ``postgres.application_role``: never a superuser, a replication or
autovacuum process, another role, or our own session (PostgreSQL's pg_signal_backend refuses superusers too).
"""

from __future__ import annotations

import re
import time

import psycopg

from entmoot_ops.errors import ConfigError
from entmoot_ops.probes import measuring, postgres
from entmoot_ops.remediation import Change, RemediationContext, procedure, remediation


def _idle_limit_seconds(ctx: RemediationContext) -> float:
    return ctx.env.thresholds.idle_session_max_minutes * 60


def _plan(ctx: RemediationContext) -> list[str]:
    role = ctx.env.postgres.application_role
    with ctx.readonly.postgres(ctx.env.postgres.primary_dsn, name="primary") as primary:
        idle = postgres.idle_sessions(primary, role, _idle_limit_seconds(ctx))
    return [f"terminate {len(idle)} session(s) of role {role} idle longer than "
            f"{ctx.env.thresholds.idle_session_max_minutes:g} min (pids {', '.join(str(s.pid) for s in idle[:20]) or 'none'})",
            "other roles' sessions are never touched; if the pool refills at once, see runbook: increase pool size or add PgBouncer"]


def _act(ctx: RemediationContext) -> list[Change]:
    if ctx.env.postgres.admin_dsn is None:
        raise ConfigError("postgres.admin_dsn is not configured: nothing may terminate sessions")
    role, limit = ctx.env.postgres.application_role, _idle_limit_seconds(ctx)
    with ctx.writable.postgres(ctx.env.postgres.admin_dsn, name="primary (remediation)") as admin, measuring("PostgreSQL primary"):
        before = postgres.connection_usage(admin).client_connections
        # MATERIALIZED: the sessions are chosen first; otherwise the planner may call pg_terminate_backend
        # on rows before the role filter has excluded them.
        terminated = admin.execute(
            """WITH idle AS MATERIALIZED (
                   SELECT pid FROM pg_stat_activity
                    WHERE usename = %s AND state = 'idle' AND pid <> pg_backend_pid()
                      AND state_change < now() - make_interval(secs => %s))
               SELECT pid FROM idle WHERE pg_terminate_backend(pid)""",
            (role, limit),
        ).fetchall()
    return [Change(f"pg_terminate_backend of {role} sessions idle > {limit:g} s",
                   f"{before} client connections", f"{len(terminated)} terminated: pids {[p for (p,) in terminated][:50]}")]


remediation("postgres.terminate-idle-sessions", title="Terminate the application's long-idle sessions",
            section="database-connection-pool-exhaustion", plan=_plan, act=_act)


def _open_transactions(ctx: RemediationContext, primary: psycopg.Connection) -> list[postgres.Session]:
    role = ctx.env.postgres.application_role
    return [s for s in postgres.idle_in_transaction(primary, ctx.env.thresholds.idle_in_transaction_max_seconds) if s.role == role]


def _plan_transactions(ctx: RemediationContext) -> list[str]:
    role = ctx.env.postgres.application_role
    with ctx.readonly.postgres(ctx.env.postgres.primary_dsn, name="primary") as primary:
        mine = _open_transactions(ctx, primary)
    return [f"terminate {len(mine)} session(s) of role {role} idle in transaction longer than "
            f"{ctx.env.thresholds.idle_in_transaction_max_seconds:g} s (pids {', '.join(str(s.pid) for s in mine[:20]) or 'none'}); "
            "their transactions roll back",
            "sessions of other roles are left alone: find their owner (pg_stat_activity.application_name, client_addr)",
            "then find the code path that leaves transactions open (a missing commit or rollback on an error path)"]


def _act_transactions(ctx: RemediationContext) -> list[Change]:
    if ctx.env.postgres.admin_dsn is None:
        raise ConfigError("postgres.admin_dsn is not configured: nothing may terminate sessions")
    role, bound = ctx.env.postgres.application_role, ctx.env.thresholds.idle_in_transaction_max_seconds
    with ctx.writable.postgres(ctx.env.postgres.admin_dsn, name="primary (remediation)") as admin, measuring("PostgreSQL primary"):
        # MATERIALIZED: the sessions are chosen first, then signalled; never a superuser, whatever its name.
        terminated = admin.execute(
            """WITH open AS MATERIALIZED (
                   SELECT a.pid FROM pg_stat_activity a JOIN pg_roles r ON r.rolname = a.usename
                    WHERE a.usename = %s AND NOT r.rolsuper AND a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()
                      AND a.state IN ('idle in transaction', 'idle in transaction (aborted)')
                      AND a.state_change < now() - make_interval(secs => %s))
               SELECT pid FROM open WHERE pg_terminate_backend(pid)""",
            (role, bound),
        ).fetchall()
    return [Change(f"pg_terminate_backend of {role} sessions idle in transaction > {bound:g} s", "open transactions",
                   f"{len(terminated)} terminated: pids {[p for (p,) in terminated][:50]}")]


remediation("postgres.terminate-idle-in-transaction", title="Terminate the application's sessions idle in a transaction",
            section="database-connection-pool-exhaustion", plan=_plan_transactions, act=_act_transactions)


def _plan_pool(ctx: RemediationContext) -> list[str]:
    settings, ecs_settings = ctx.env.postgres, ctx.env.ecs
    with ctx.readonly.postgres(settings.primary_dsn, name="primary") as primary:
        usable = postgres.connection_usage(primary).usable
    fits_now = usable // max(1, ecs_settings.min_count) - settings.pool_max_overflow
    fits_max = usable // ecs_settings.max_count - settings.pool_max_overflow
    return [f"{usable} connections are usable (max_connections minus reserved); the service runs "
            f"{ecs_settings.min_count}..{ecs_settings.max_count} tasks",
            f"a pool of at most {fits_now} per task fits at {ecs_settings.min_count} tasks, {max(fits_max, 0)} at "
            f"{ecs_settings.max_count}; the runbook's formula (cores x 2 + spindles) is the ceiling worth having",
            "lower DATABASE_POOL_SIZE, then aws ecs update-service ... --force-new-deployment; or put PgBouncer in front "
            "(runbook solution 3) so that tasks share server connections",
            "raising max_connections (an RDS parameter group change, a reboot) only moves the limit"]


remediation("postgres.resize-pool", title="Make the application's pools fit in the database's connections",
            section="database-connection-pool-exhaustion", plan=_plan_pool)


def _cancel_roles(ctx: RemediationContext) -> list[str]:
    return list(ctx.env.postgres.cancel_roles) or [ctx.env.postgres.application_role]


def _plan_cancel(ctx: RemediationContext) -> list[str]:
    roles, bound = _cancel_roles(ctx), ctx.env.thresholds.long_query_max_seconds
    with ctx.readonly.postgres(ctx.env.postgres.primary_dsn, name="primary") as primary:
        mine = [q for q in postgres.long_running_queries(primary, bound) if q.role in roles]
    return [f"pg_cancel_backend of {len(mine)} statement(s) of {', '.join(roles)} running longer than {bound:g} s "
            f"(pids {', '.join(str(q.pid) for q in mine[:20]) or 'none'})",
            f"after {ctx.env.postgres.cancel_grace_seconds:g} s, pg_terminate_backend of the sessions still running the same statement",
            "never a superuser, a replication or background process, a role outside postgres.cancel_roles, or our own session",
            "then read the statement's plan (EXPLAIN on a replica) and its pg_stat_statements row"]


_CANCELLABLE = """SELECT a.pid, a.query_start FROM pg_stat_activity a JOIN pg_roles r ON r.rolname = a.usename
                   WHERE a.usename = ANY(%s) AND NOT r.rolsuper AND a.backend_type = 'client backend' AND a.state = 'active'
                     AND a.pid <> pg_backend_pid() AND a.query_start < now() - make_interval(secs => %s)"""


def _act_cancel(ctx: RemediationContext) -> list[Change]:
    if ctx.env.postgres.admin_dsn is None:
        raise ConfigError("postgres.admin_dsn is not configured: nothing may cancel statements")
    roles, bound, grace = _cancel_roles(ctx), ctx.env.thresholds.long_query_max_seconds, ctx.env.postgres.cancel_grace_seconds
    with ctx.writable.postgres(ctx.env.postgres.admin_dsn, name="primary (remediation)") as admin, measuring("PostgreSQL primary"):
        targets = admin.execute(_CANCELLABLE, (roles, bound)).fetchall()
        cancelled = [pid for pid, _ in targets if admin.execute("SELECT pg_cancel_backend(%s)", (pid,)).fetchone()[0]]
        if targets:
            time.sleep(grace)
        # The same session still running the same statement (same query_start): a cancel it ignored.
        stubborn = [pid for pid, started in targets if admin.execute(
            "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND query_start = %s AND state = 'active'", (pid, started)).fetchone()]
        terminated = [pid for pid in stubborn if admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]]
    return [Change(f"pg_cancel_backend of {', '.join(roles)} statements running > {bound:g} s", f"{len(targets)} running",
                   f"{len(cancelled)} cancelled: pids {cancelled[:50]}"),
            Change(f"pg_terminate_backend after {grace:g} s", f"{len(stubborn)} still running", f"{len(terminated)} terminated")]


remediation("postgres.cancel-long-queries", title="Cancel, then terminate, the application's long-running statements",
            section="high-database-cpu", plan=_plan_cancel, act=_act_cancel)

_FILTERED_COLUMN = re.compile(r"\b(?:WHERE|AND|OR)\s+(?:\w+\.)?(\w+)\s*(?:=|<|>|\bIN\b|\bLIKE\b|\bBETWEEN\b)", re.IGNORECASE)


def _plan_index(ctx: RemediationContext) -> list[str]:
    """CREATE INDEX CONCURRENTLY suggestions from the seq-scan evidence and the statements that filter those tables.
    Never executed: an index build is a change to review and schedule."""
    t = ctx.env.thresholds
    with ctx.readonly.postgres(ctx.env.postgres.primary_dsn, name="primary") as primary:
        tables = postgres.seq_scan_heavy_tables(primary, t.seq_scan_min, t.seq_scan_min_rows)
        statements = postgres.top_statements(primary, limit=50) or ()
    steps = []
    for table in tables:
        name = table.table.split(".", 1)[1]
        columns = sorted({c for s in statements if re.search(rf"\b{re.escape(name)}\b", s.query) for c in _FILTERED_COLUMN.findall(s.query)})
        for column in columns or ["<column of its WHERE clauses>"]:
            steps.append(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name}_{column.strip('<>').replace(' ', '_')}_idx "
                         f"ON {table.table} ({column});  -- {table.seq_scan} seq scans of {table.live_rows} rows")
    return steps + ["never run by this suite: check the plan with EXPLAIN first, build off-peak, then ANALYZE the table"]


remediation("postgres.suggest-index", title="Suggest the missing index (a plan, never executed)", section="high-database-cpu",
            plan=_plan_index)
procedure("postgres.tune-statement", title="Tune the slowest statement", section="high-database-cpu", steps=[
    "read the attached pg_stat_statements rows: calls, total and mean time, rows per call",
    "EXPLAIN (ANALYZE, BUFFERS) the statement on a replica: a Seq Scan on a large table wants an index (postgres.seq-scan-tables)",
    "many calls of a cheap statement: an N+1 pattern in the application; few calls of an expensive one: the plan",
    "after a fix: SELECT pg_stat_statements_reset() is a write: leave it to the DBA",
])
