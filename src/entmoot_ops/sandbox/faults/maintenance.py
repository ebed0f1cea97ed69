"""Faults that the weekly and monthly maintenance checks catch: stale and bloated tables, indexes, sequences, old jobs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING



from entmoot_ops.sandbox.processes import wait_until

if TYPE_CHECKING:
    from entmoot_ops.sandbox.core import Target

from entmoot_ops.sandbox.faults.common import (APP_ROLE, as_app, as_superuser,
                                                unrecorded)

def _maintenance_fault(sandbox: Target, make: tuple[str, ...], undo: tuple[str, ...]) -> Callable[[], None]:
    as_app(sandbox, *make)
    return lambda: as_app(sandbox, *undo)


def stale_table(sandbox: Target, since: datetime) -> Callable[[], None]:
    """A 20,000-row table autovacuum may not touch, three quarters of it rewritten since its ANALYZE: stale statistics
    and dead rows both far past their autovacuum triggers."""
    as_app(sandbox, "CREATE TABLE sandbox_upkeep (id int PRIMARY KEY, v int) WITH (autovacuum_enabled = false)",
            "INSERT INTO sandbox_upkeep SELECT g, 0 FROM generate_series(1, 20000) g")
    # A session of its own: the ANALYZE must come after the inserts' counts reached the statistics.
    undo = _maintenance_fault(sandbox, ("ANALYZE sandbox_upkeep", "UPDATE sandbox_upkeep SET v = 1 WHERE id <= 15000"),
                              ("DROP TABLE IF EXISTS sandbox_upkeep",))
    _wait_for_xmin_horizon(sandbox)  # the fault is ready once a VACUUM could remove those dead rows
    return undo


def _wait_for_xmin_horizon(sandbox: Target) -> None:
    """The replica's hot_standby_feedback holds the xmin horizon back for up to wal_receiver_status_interval (10 s):
    until it passes the last write, no VACUUM can remove the rows that write made dead."""
    with unrecorded(sandbox) as conn:
        after = conn.execute("SELECT txid_current() % 4294967296").fetchone()[0]
        wait_until(lambda: conn.execute("SELECT coalesce(bool_and(xmin IS NULL OR xmin::text::bigint > %s), true) "
                                        "FROM pg_replication_slots", (after,)).fetchone()[0], what="xmin horizon past the last write",
                   timeout=30)


def bloated_table(sandbox: Target, since: datetime, rows: int = 200000) -> Callable[[], None]:
    """Four rows in five deleted across the whole table and vacuumed: the pages (and the key's index pages) stay,
    mostly empty, as after a mass delete."""
    as_app(sandbox, "CREATE TABLE sandbox_bloat (id int PRIMARY KEY, payload text) WITH (autovacuum_enabled = false)",
            f"INSERT INTO sandbox_bloat SELECT g, md5(g::text) FROM generate_series(1, {int(rows)}) g",
            "DELETE FROM sandbox_bloat WHERE id % 5 <> 0")
    _wait_for_xmin_horizon(sandbox)  # so that the VACUUM below removes the deleted rows and only their space remains
    return _maintenance_fault(sandbox, ("VACUUM sandbox_bloat", "ANALYZE sandbox_bloat"), ("DROP TABLE IF EXISTS sandbox_bloat",))


def invalid_index(sandbox: Target, since: datetime) -> Callable[[], None]:
    """An index left invalid, as a failed CREATE INDEX CONCURRENTLY leaves one (marked so in the catalog)."""
    as_app(sandbox, "CREATE INDEX sandbox_invalid_idx ON optimizations (created_at)")
    as_superuser(sandbox, sandbox.postgres.primary,
               "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'public.sandbox_invalid_idx'::regclass")
    return lambda: as_app(sandbox, "DROP INDEX IF EXISTS sandbox_invalid_idx")


def unused_index(sandbox: Target, since: datetime) -> Callable[[], None]:
    """An index on optimizations (score) that no query uses."""
    return _maintenance_fault(sandbox, ("CREATE INDEX sandbox_unused_idx ON optimizations (score)",),
                              ("DROP INDEX IF EXISTS sandbox_unused_idx",))


def redundant_index(sandbox: Target, since: datetime) -> Callable[[], None]:
    """A second index on buildings (project_id), which idx_buildings_project already serves."""
    return _maintenance_fault(sandbox, ("CREATE INDEX sandbox_redundant_idx ON buildings (project_id)",),
                              ("DROP INDEX IF EXISTS sandbox_redundant_idx",))


def sequence_near_exhaustion(sandbox: Target, since: datetime) -> Callable[[], None]:
    """A serial (integer) key at 2,000,000,000 of its 2,147,483,647; its sequence is bigint and would go on."""
    return _maintenance_fault(sandbox, ("CREATE TABLE sandbox_counters (id serial PRIMARY KEY, n int)",
                                        "SELECT setval('sandbox_counters_id_seq', 2000000000)"),
                              ("DROP TABLE IF EXISTS sandbox_counters",))


def gist_dropped(sandbox: Target, since: datetime) -> Callable[[], None]:
    """The spatial (GiST) index on buildings.geom dropped: the spatial query scans sequentially."""
    return _maintenance_fault(sandbox, ("DROP INDEX idx_buildings_location",),
                              ("CREATE INDEX IF NOT EXISTS idx_buildings_location ON buildings USING GIST (geom)",))


def old_jobs(sandbox: Target, since: datetime, count: int = 50, days: float = 120) -> Callable[[], None]:
    """Finished jobs older than the 90-day retention, still in optimization_jobs."""
    with unrecorded(sandbox, APP_ROLE) as conn:
        ids = [row[0] for row in conn.execute(
            "INSERT INTO optimization_jobs (project_id, status, created_at, started_at, completed_at) "
            "SELECT 1 + g %% 200, 'completed', now() - make_interval(days => %s), now() - make_interval(days => %s), "
            "now() - make_interval(days => %s) + interval '1 minute' FROM generate_series(1, %s) g RETURNING id",
            (days, days, days, count)).fetchall()]

    def undo() -> None:
        with unrecorded(sandbox, APP_ROLE) as conn:
            conn.execute("DELETE FROM optimization_jobs WHERE id = ANY(%s)", (ids,))
            conn.execute("DELETE FROM optimization_jobs_archive WHERE id = ANY(%s)", (ids,))
    return undo
