"""PostgreSQL remediations (runbook Database Connection Pool Exhaustion): terminate the application's long-idle
sessions (solution 2) or its sessions idle inside an open transaction, and size the pools (a plan).

Termination only ever touches client sessions of ``postgres.application_role``: never a superuser, a replication or
autovacuum process, another role, or our own session (PostgreSQL's pg_signal_backend refuses superusers too).
"""

from __future__ import annotations

import psycopg

from entmoot_ops.errors import ConfigError
from entmoot_ops.probes import measuring, postgres
from entmoot_ops.remediation import Change, RemediationContext, remediation


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


def _open_transactions(ctx: RemediationContext, primary: psycopg.Connection) -> list[postgres.OpenTransaction]:
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
