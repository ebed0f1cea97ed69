"""Database Maintenance remediations, safe on a live database: ANALYZE and VACUUM of the tables that need it (never
VACUUM FULL, which locks the table out), REINDEX CONCURRENTLY of invalid indexes, DROP INDEX CONCURRENTLY of unused or
redundant ones (a plan unless allowed), and the archive of old jobs in one statement per bounded batch.

The runbook's archive is INSERT ... SELECT, then DELETE: a job that becomes eligible between the two (a retried job
finishing with an old completed_at, say) is deleted without having been copied. Here each batch is
``WITH moved AS (DELETE ... RETURNING *) INSERT INTO optimization_jobs_archive SELECT * FROM moved``: a row is
archived exactly when it is deleted.
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg
from psycopg import sql

from entmoot_ops.errors import ConfigError, OpsError
from entmoot_ops.probes import maintenance, measuring
from entmoot_ops.remediation import Change, RemediationContext, procedure, remediation

LOCK_TIMEOUT_MS = 2000  # a batch that cannot get its locks gives way to the application instead of queueing it


def _admin(ctx: RemediationContext) -> psycopg.Connection:
    if ctx.env.postgres.admin_dsn is None:
        raise ConfigError("postgres.admin_dsn is not configured: maintenance needs a role that owns the tables")
    return ctx.writable.postgres(ctx.env.postgres.admin_dsn, name="primary (remediation)")


def _read(ctx: RemediationContext, probe: Callable[[psycopg.Connection], tuple]) -> tuple:
    with ctx.readonly.postgres(ctx.env.postgres.primary_dsn, name="primary") as primary:
        return probe(primary)


def _identifier(qualified: str) -> sql.Identifier:
    return sql.Identifier(*qualified.split(".", 1))


def _stale(ctx: RemediationContext) -> list[str]:
    t = ctx.env.thresholds
    return [u.table for u in maintenance.analyze_overdue(_read(ctx, maintenance.table_upkeep), t.upkeep_overdue_factor, t.upkeep_min_rows)]


def _behind(ctx: RemediationContext) -> list[str]:
    t = ctx.env.thresholds
    return [u.table for u in maintenance.vacuum_overdue(_read(ctx, maintenance.table_upkeep), t.upkeep_overdue_factor, t.upkeep_min_rows)]


def _run_each(ctx: RemediationContext, template: str, names: list[str], action: str) -> list[Change]:
    """One maintenance statement per object, each its own transaction (VACUUM and CONCURRENTLY cannot run in one)."""
    if not names:
        raise OpsError(f"nothing to {action}: the check's finding is gone")
    with _admin(ctx) as admin, measuring("PostgreSQL primary"):
        # The session's statement timeout is a check's; maintenance of a large table takes longer, by design.
        admin.execute(f"SET statement_timeout = {int(ctx.env.postgres.maintenance_timeout_seconds * 1000)}")
        for name in names:
            admin.execute(sql.SQL(template).format(_identifier(name)))
    return [Change(f"{action} {name}", "overdue", "done") for name in names]


remediation("postgres.analyze-stale", title="ANALYZE the tables whose statistics fell behind", section="weekly-maintenance",
            plan=lambda ctx: [f"ANALYZE {name};" for name in _stale(ctx)] or ["nothing is stale any more"],
            act=lambda ctx: _run_each(ctx, "ANALYZE {}", _stale(ctx), "ANALYZE"))
remediation("postgres.vacuum", title="VACUUM (ANALYZE) the tables autovacuum fell behind on (never FULL)", section="weekly-maintenance",
            plan=lambda ctx: [f"VACUUM (ANALYZE) {name};  -- not FULL: that takes an exclusive lock for the whole rewrite"
                              for name in _behind(ctx)] or ["nothing is behind any more"],
            act=lambda ctx: _run_each(ctx, "VACUUM (ANALYZE) {}", _behind(ctx), "VACUUM (ANALYZE)"))


def _invalid(ctx: RemediationContext) -> list[str]:
    return [i.index for i in _read(ctx, maintenance.invalid_indexes)]


remediation("postgres.reindex-invalid", title="REINDEX INDEX CONCURRENTLY the invalid indexes", section="monthly-maintenance",
            plan=lambda ctx: [f"REINDEX INDEX CONCURRENTLY {name};  -- a unique index that failed on duplicates fails again: "
                              "fix the duplicates first" for name in _invalid(ctx)] or ["no invalid index any more"],
            act=lambda ctx: _run_each(ctx, "REINDEX INDEX CONCURRENTLY {}", _invalid(ctx), "REINDEX INDEX CONCURRENTLY"))


def _bloated_indexes(ctx: RemediationContext) -> list[str]:
    t = ctx.env.thresholds
    return [b.relation for b in _read(ctx, lambda primary: maintenance.index_bloat(primary, t.bloat_min_bytes)) if b.ratio > t.bloat_max_ratio]


remediation("postgres.reindex-bloated", title="REINDEX INDEX CONCURRENTLY the bloated B-tree indexes", section="monthly-maintenance",
            plan=lambda ctx: [f"REINDEX INDEX CONCURRENTLY {name};  -- builds a new copy beside the old: needs its size free on disk"
                              for name in _bloated_indexes(ctx)] or ["no bloated index any more"],
            act=lambda ctx: _run_each(ctx, "REINDEX INDEX CONCURRENTLY {}", _bloated_indexes(ctx), "REINDEX INDEX CONCURRENTLY"))
procedure("postgres.repack-table", title="Give a bloated table's space back (never automated)", section="weekly-maintenance", steps=[
    "first stop the cause: long transactions or a slot holding the xmin horizon back, autovacuum too slow for the write rate",
    "pg_repack -t <table> (online, needs the extension and twice the table's size free), or VACUUM FULL in the maintenance "
    "window: it locks the table out for the whole rewrite, which is why this suite never runs it",
    "then VACUUM (ANALYZE) and re-run -m weekly",
])


def _droppable(ctx: RemediationContext) -> list[str]:
    if ctx.check_id == "postgres.redundant-indexes":
        return [r.index for r in _read(ctx, maintenance.redundant_indexes)]
    return [u.index for u in maintenance.unused_indexes_everywhere(ctx.readonly)]


def _drop_plan(ctx: RemediationContext) -> list[str]:
    allowed = "" if ctx.env.postgres.drop_unused_indexes_allowed else "  [a plan only: acting needs postgres.drop_unused_indexes_allowed]"
    return [f"DROP INDEX CONCURRENTLY {name};{allowed}" for name in _droppable(ctx)] + [
        "keep the definitions (pg_get_indexdef) to recreate one CONCURRENTLY if a rare query turns out to need it"]


def _drop(ctx: RemediationContext) -> list[Change]:
    if not ctx.env.postgres.drop_unused_indexes_allowed:
        raise OpsError(f"dropping indexes on {ctx.env.name} needs postgres.drop_unused_indexes_allowed = true")
    return _run_each(ctx, "DROP INDEX CONCURRENTLY IF EXISTS {}", _droppable(ctx), "DROP INDEX CONCURRENTLY")


remediation("postgres.drop-unused-index", title="DROP INDEX CONCURRENTLY of unused or redundant indexes (a plan unless allowed)",
            section="monthly-maintenance", plan=_drop_plan, act=_drop)

ARCHIVE_BATCH = """
WITH moved AS (
    DELETE FROM optimization_jobs
     WHERE id IN (SELECT id FROM optimization_jobs
                   WHERE status IN ('completed', 'failed') AND completed_at < now() - make_interval(days => %(days)s)
                   ORDER BY id LIMIT %(rows)s FOR UPDATE SKIP LOCKED)
    RETURNING *)
INSERT INTO optimization_jobs_archive SELECT * FROM moved"""


def archive_old_jobs(connection: psycopg.Connection, days: float, batch_rows: int, max_batches: int) -> int:
    """Move finished jobs older than ``days`` to optimization_jobs_archive, one statement per batch of ``batch_rows``,
    each batch its own transaction with a lock timeout. Rows locked by the application are skipped, not waited for."""
    moved = 0
    for _ in range(max_batches):
        with connection.transaction():
            connection.execute(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}")
            count = connection.execute(ARCHIVE_BATCH, {"days": days, "rows": batch_rows}).rowcount
        moved += count
        if count < batch_rows:
            break
    return moved


def _archive_plan(ctx: RemediationContext) -> list[str]:
    settings, days = ctx.env.postgres, ctx.env.thresholds.job_retention_days
    old = _read(ctx, lambda primary: maintenance.old_jobs(primary, days))
    return [f"move {old.count} finished jobs older than {days:g} days to optimization_jobs_archive, in batches of "
            f"{settings.archive_batch_rows} (at most {settings.archive_max_batches}), each one statement:",
            *ARCHIVE_BATCH.strip().splitlines(), f"with SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS} ms per batch; then autovacuum "
            "(or postgres.vacuum) reclaims the space"]


def _archive(ctx: RemediationContext) -> list[Change]:
    settings, days = ctx.env.postgres, ctx.env.thresholds.job_retention_days
    with _admin(ctx) as admin, measuring("PostgreSQL primary"):
        moved = archive_old_jobs(admin, days, settings.archive_batch_rows, settings.archive_max_batches)
    return [Change(f"archive of finished jobs older than {days:g} days", "in optimization_jobs", f"{moved} moved to optimization_jobs_archive")]


remediation("jobs.archive-old", title="Archive finished jobs older than 90 days, atomically and in batches", section="monthly-maintenance",
            plan=_archive_plan, act=_archive)


def _spatial_plan(ctx: RemediationContext) -> list[str]:
    table, column = ctx.env.postgres.spatial_column.rsplit(".", 1)
    return [f"CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_{table}_{column} ON {table} USING GIST ({column});",
            f"then EXPLAIN the spatial query again (no ANALYZE on a live database): {ctx.env.postgres.spatial_query}",
            "an index that exists but is not chosen: ANALYZE the table, and check the query's operator matches the "
            "index's operator class (ST_Intersects / && on geometry)"]


remediation("postgres.create-spatial-index", title="Create the GiST index the spatial query needs (a plan)",
            section="query-optimization", plan=_spatial_plan)
procedure("postgres.freeze", title="Give transaction IDs room: VACUUM (FREEZE) the oldest tables", section="weekly-maintenance", steps=[
    "SELECT relname, age(relfrozenxid) FROM pg_class WHERE relkind = 'r' ORDER BY 2 DESC LIMIT 10: the tables holding it back",
    "look for what blocks freezing: long transactions, prepared transactions (pg_prepared_xacts), stale replication slots",
    "VACUUM (FREEZE, VERBOSE) on those tables, in the maintenance window; watch age(datfrozenxid) fall",
])
procedure("postgres.widen-sequence", title="Widen a sequence before it runs out", section="weekly-maintenance", steps=[
    "an integer column behind it: ALTER TABLE ... ALTER COLUMN id TYPE bigint (rewrites the table: plan the window, or "
    "add a bigint column, backfill in batches, swap)",
    "then ALTER SEQUENCE ... AS bigint MAXVALUE 9223372036854775807",
])
