"""Faults of PostgreSQL and RDS: replication, CPU, storage, availability, the job queue, sessions, statements."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

import contextlib
import threading

import psycopg

from entmoot_ops.sandbox.processes import wait_until

if TYPE_CHECKING:
    from entmoot_ops.sandbox.core import Target

from entmoot_ops.sandbox.faults.common import (APP_ROLE, GIB, api_faults, application_session, as_app, as_superuser,
                                                forget_statements, unrecorded)

def replica_paused(sandbox: Target, since: datetime) -> Callable[[], None]:
    """WAL replay paused on the replica: its lag grows while the primary writes."""
    replica = sandbox.postgres.replica
    as_superuser(sandbox, replica, "SELECT pg_wal_replay_pause()")

    def undo() -> None:
        as_superuser(sandbox, replica, "SELECT pg_wal_replay_resume()")
        sandbox.agent.rewind("AWS/RDS", since)
    return undo


def slot_inactive(sandbox: Target, since: datetime) -> Callable[[], None]:
    """A physical replication slot no replica uses, retaining WAL on the primary."""
    primary = sandbox.postgres.primary
    as_superuser(sandbox, primary, "SELECT pg_create_physical_replication_slot('orphaned_replica', true)")
    as_superuser(sandbox, primary, "CHECKPOINT")
    return lambda: as_superuser(sandbox, primary, "SELECT pg_drop_replication_slot('orphaned_replica')")


def _simulated_rds_load(sandbox: Target, since: datetime, attribute: str, value: float) -> Callable[[], None]:
    """The agent reports RDS metrics with simulated load added (``attribute`` of the agent); undo takes it away
    and puts healthy readings in place of those it produced."""
    setattr(sandbox.agent, attribute, value)
    sandbox.agent.tick()

    def undo() -> None:
        setattr(sandbox.agent, attribute, type(value)(0))
        sandbox.agent.restore_rds(since)
    return undo


def rds_cpu_pressure(sandbox: Target, since: datetime, percent: float = 95) -> Callable[[], None]:
    """The primary busy at ``percent`` of its (seeded) instance class: simulated, as a real burner would starve
    the machine the tests run on. A larger instance class halves it per step."""
    return _simulated_rds_load(sandbox, since, "cpu_fill_percent", float(percent))


def rds_low_storage(sandbox: Target, since: datetime, free_ratio: float = 0.05) -> Callable[[], None]:
    """The primary's FreeStorageSpace down to ``free_ratio`` of its allocated storage (simulated)."""
    return _simulated_rds_load(sandbox, since, "storage_fill_bytes", int(sandbox.aws.allocated_gib() * GIB * (1 - free_ratio)))


def rds_unavailable(sandbox: Target, since: datetime, status: str = "storage-full") -> Callable[[], None]:
    """The DB instance's status in RDS becomes ``status`` (storage-full by default)."""
    sandbox.aws.set_db_status(status)
    return lambda: sandbox.aws.set_db_status("available")


def jobs_stuck(sandbox: Target, since: datetime) -> Callable[[], None]:
    """The worker paused, with a job pending for two hours and one running for three."""
    undo_worker = api_faults(sandbox, worker_paused=True)
    with unrecorded(sandbox, APP_ROLE) as conn:
        ids = [row[0] for row in conn.execute(
            "INSERT INTO optimization_jobs (project_id, status, created_at, started_at) VALUES "
            "(1, 'pending', now() - interval '2 hours', NULL), "
            "(2, 'running', now() - interval '3 hours', now() - interval '3 hours') RETURNING id").fetchall()]

    def undo() -> None:
        with unrecorded(sandbox, APP_ROLE) as conn:
            conn.execute("DELETE FROM optimization_jobs WHERE id = ANY(%s)", (ids,))
        undo_worker()
    return undo


def idle_sessions(sandbox: Target, since: datetime, count: int = 45) -> Callable[[], None]:
    """``count`` idle sessions of the application held open on the primary."""
    sessions = [psycopg.connect(sandbox.postgres.dsn(APP_ROLE), autocommit=True) for _ in range(count)]
    for conn in sessions:
        conn.execute("SELECT 1")

    def undo() -> None:
        for conn in sessions:
            conn.close()  # sessions a remediation terminated are closed already: close() is then a no-op
    return undo


def idle_in_transaction(sandbox: Target, since: datetime, count: int = 2, superuser: bool = False) -> Callable[[], None]:
    """Sessions that began a transaction and went quiet, as code that forgets to commit on an error path leaves
    them; ``superuser`` adds one of the postgres role (which no remediation may touch)."""
    roles = [APP_ROLE] * count + ["postgres"] * superuser
    sessions = [psycopg.connect(sandbox.postgres.dsn(role), connect_timeout=2) for role in roles]
    for conn in sessions:
        conn.execute("SELECT count(*) FROM pg_stat_activity")  # psycopg opens the transaction; nothing commits it

    def undo() -> None:
        for conn in sessions:
            conn.close()  # a terminated session is closed already
    return undo


def long_query(sandbox: Target, since: datetime, seconds: float = 600, superuser: bool = False) -> Callable[[], None]:
    """A statement of the application that runs on (pg_sleep: long, not CPU-heavy, so the machine stays usable);
    ``superuser`` adds one of the postgres role, which no remediation may touch."""
    roles = [APP_ROLE] + ["postgres"] * superuser
    sessions = [psycopg.connect(sandbox.postgres.dsn(role), autocommit=True, connect_timeout=2) for role in roles]

    def run(conn: psycopg.Connection) -> None:
        with contextlib.suppress(psycopg.Error):  # cancelled or terminated: the point of the remediation
            conn.execute("SELECT pg_sleep(%s) /* sandbox long query */", (seconds,))

    threads = [threading.Thread(target=run, args=(conn,), daemon=True, name="sandbox-long-query") for conn in sessions]
    for thread in threads:
        thread.start()
    wait_until(lambda: _active_sleeps(sandbox) >= len(roles), what="long queries running", timeout=10)

    def undo() -> None:
        for conn in sessions:
            with contextlib.suppress(psycopg.Error):
                conn.cancel()
        for thread in threads:
            thread.join(10)
        for conn in sessions:
            conn.close()
    return undo


def _active_sleeps(sandbox: Target) -> int:
    with unrecorded(sandbox) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                            "AND query LIKE '%sandbox long query%' AND pid <> pg_backend_pid()").fetchone()[0]


def seq_scans(sandbox: Target, since: datetime, rows: int = 12000, scans: int = 1100) -> Callable[[], None]:
    """A large table without the index its queries need, read by sequential scan again and again; the scans are
    the application's (the index suggestion reads them in pg_stat_statements), and undo forgets them there."""
    # The inserts reach the statistics before ANALYZE, not after it: otherwise the table reads as 12,000 rows
    # modified since its ANALYZE, a second condition (postgres.analyze-fresh) this fault does not mean to cause.
    as_app(sandbox, "CREATE TABLE sandbox_scans (id int, kind text)",
            f"INSERT INTO sandbox_scans SELECT g, md5(g::text) FROM generate_series(1, {int(rows)}) g")
    as_app(sandbox, "ANALYZE sandbox_scans")
    with application_session(sandbox) as conn:
        for i in range(scans):
            conn.execute("SELECT count(*) FROM sandbox_scans WHERE kind = %s", (str(i),))
    # Closing the session flushed its statistics: pg_stat_user_tables counts every scan now.

    def undo() -> None:
        as_app(sandbox, "DROP TABLE sandbox_scans")
        forget_statements(sandbox, "sandbox_scans")
    return undo


def slow_statement(sandbox: Target, since: datetime, seconds: float = 1.2) -> Callable[[], None]:
    """One statement of the application slower than a second, in pg_stat_statements; undo forgets it there."""
    with application_session(sandbox) as conn:
        conn.execute(f"SELECT pg_sleep({float(seconds)}) /* sandbox slow statement */")
    return lambda: forget_statements(sandbox, "sandbox slow statement")
