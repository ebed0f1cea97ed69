"""PostgreSQL remediation: terminate the application's long-idle sessions (runbook Pool Exhaustion, solution 2)."""

from __future__ import annotations

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
