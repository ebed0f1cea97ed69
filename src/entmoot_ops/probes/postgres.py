"""PostgreSQL measurements. Every function takes an open (read-only) session and runs one or two queries.

Written for PostgreSQL 13+: statistics views use ``relname`` / ``indexrelname``, replication slots have
``wal_status``, and idleness is measured from ``state_change`` (``query_start`` is when the last query began,
not when the session went idle).
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from entmoot_ops.probes import measuring
from entmoot_ops.redaction import excerpt, redact_statement


@dataclass(frozen=True)
class ReplicaConnection:
    application_name: str
    client_addr: str | None
    state: str  # streaming, catchup, startup, backup, stopping
    sync_state: str
    replay_bytes_behind: int | None


def replicas_connected(primary: psycopg.Connection) -> tuple[ReplicaConnection, ...]:
    with measuring("PostgreSQL primary"):
        rows = primary.execute(
            """SELECT application_name, client_addr::text, state, sync_state,
                      pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint
                 FROM pg_stat_replication ORDER BY application_name"""
        ).fetchall()
    return tuple(ReplicaConnection(*row) for row in rows)


@dataclass(frozen=True)
class Slot:
    name: str
    slot_type: str
    active: bool
    wal_status: str | None
    retained_bytes: int | None


def replication_slots(primary: psycopg.Connection) -> tuple[Slot, ...]:
    with measuring("PostgreSQL primary"):
        rows = primary.execute(
            """SELECT slot_name, slot_type, active, wal_status,
                      pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint
                 FROM pg_replication_slots ORDER BY slot_name"""
        ).fetchall()
    return tuple(Slot(*row) for row in rows)


@dataclass(frozen=True)
class ReplicaLag:
    in_recovery: bool
    replay_paused: bool
    lag_seconds: float | None  # None: the replica has never replayed a transaction


def replica_lag(replica: psycopg.Connection) -> ReplicaLag:
    """Lag as the replica sees it. A replica that has replayed everything it received is 0 s behind, however
    long ago the last transaction was: an idle primary is not lag. Otherwise lag is the age of the last
    replayed transaction, which keeps growing while replay is stuck or paused."""
    with measuring("PostgreSQL replica"):
        row = replica.execute(
            """SELECT pg_is_in_recovery(),
                      pg_is_in_recovery() AND pg_is_wal_replay_paused(),
                      CASE WHEN NOT pg_is_in_recovery() THEN NULL
                           WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
                           ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END"""
        ).fetchone()
    return ReplicaLag(in_recovery=row[0], replay_paused=row[1], lag_seconds=row[2])


def lag_seen_by_primary(primary: psycopg.Connection, application_name: str) -> float | None:
    """The replica's lag as the primary sees it (pg_stat_replication): 0 when it has replayed all the primary
    wrote, else ``replay_lag``; None when the primary knows nothing (not connected, or no lag sample yet). It
    judges a replica that has received WAL but has not replayed a transaction since it started."""
    with measuring("PostgreSQL primary"):
        row = primary.execute(
            """SELECT CASE WHEN replay_lsn = pg_current_wal_lsn() THEN 0
                           ELSE extract(epoch FROM replay_lag)::float8 END
                 FROM pg_stat_replication WHERE application_name = %s ORDER BY replay_lsn DESC NULLS LAST LIMIT 1""",
            (application_name,)).fetchone()
    return row[0] if row else None


@dataclass(frozen=True)
class ConnectionUsage:
    by_database_user_state: tuple[tuple[str, str, str, int], ...]
    client_connections: int
    max_connections: int
    reserved_connections: int

    @property
    def usable(self) -> int:
        return self.max_connections - self.reserved_connections

    @property
    def ratio(self) -> float:
        return self.client_connections / self.usable


def connection_usage(primary: psycopg.Connection) -> ConnectionUsage:
    with measuring("PostgreSQL primary"):
        rows = primary.execute(
            """SELECT coalesce(datname, '(none)'), coalesce(usename, '(none)'), coalesce(state, '(unknown)'), count(*)::int
                 FROM pg_stat_activity WHERE backend_type = 'client backend'
                GROUP BY 1, 2, 3 ORDER BY 4 DESC, 1, 2, 3"""
        ).fetchall()
        limits = primary.execute(
            """SELECT current_setting('max_connections')::int,
                      current_setting('superuser_reserved_connections')::int
                      + coalesce(current_setting('reserved_connections', true)::int, 0)
                      + coalesce(current_setting('rds.rds_superuser_reserved_connections', true)::int, 0)"""
        ).fetchone()
    return ConnectionUsage(
        by_database_user_state=tuple(rows),
        client_connections=sum(row[-1] for row in rows),
        max_connections=limits[0],
        reserved_connections=limits[1],
    )


@dataclass(frozen=True)
class IdleSession:
    pid: int
    role: str
    database: str | None
    idle_seconds: float


def idle_sessions(primary: psycopg.Connection, role: str, idle_longer_than_seconds: float) -> tuple[IdleSession, ...]:
    with measuring("PostgreSQL primary"):
        rows = primary.execute(
            """SELECT pid, usename, datname, extract(epoch FROM now() - state_change)::float8
                 FROM pg_stat_activity
                WHERE usename = %s AND state = 'idle' AND pid <> pg_backend_pid()
                  AND state_change < now() - make_interval(secs => %s)
                ORDER BY state_change""",
            (role, idle_longer_than_seconds),
        ).fetchall()
    return tuple(IdleSession(*row) for row in rows)


# A statement's text on one line (a reading is one line), read whole (up to a bound for a statement the size of a
# bulk insert) so that its literals are replaced before it is cut: see statement().
ONE_LINE_QUERY = r"left(regexp_replace(query, '\s+', ' ', 'g'), 8000)"
STATEMENT_CHARS = 200


def statement(text: str | None) -> str:
    """A statement as a reading shows it: literals as $n placeholders (pg_stat_activity shows them as sent, and
    pg_stat_statements before PostgreSQL 16 keeps utility statements' literals: ALTER ROLE ... PASSWORD '...'),
    then redacted, then cut."""
    return excerpt(redact_statement(text or ""), STATEMENT_CHARS)


@dataclass(frozen=True)
class Session:
    pid: int
    role: str
    database: str | None
    state: str
    seconds: float  # in that state: since state_change when idle in a transaction, since query_start when active
    query: str  # its current or last statement, truncated


# The client sessions of others: not walsenders, autovacuum or other background processes (backend_type), not our
# own session, and not our own (monitoring) role.
_OTHERS = "backend_type = 'client backend' AND pid <> pg_backend_pid() AND usename <> current_user"


def _sessions(primary: psycopg.Connection, states: tuple[str, ...], since: str, longer_than_seconds: float) -> tuple[Session, ...]:
    with measuring("PostgreSQL primary"):
        rows = primary.execute(
            f"""SELECT pid, usename, datname, state, extract(epoch FROM now() - {since})::float8, {ONE_LINE_QUERY}
                 FROM pg_stat_activity
                WHERE {_OTHERS} AND state = ANY(%s) AND {since} < now() - make_interval(secs => %s)
                ORDER BY {since}""",  # noqa: S608 - column names of this module, not input
            (list(states), longer_than_seconds),
        ).fetchall()
    return tuple(Session(*row[:-1], statement(row[-1])) for row in rows)


def idle_in_transaction(primary: psycopg.Connection, longer_than_seconds: float) -> tuple[Session, ...]:
    """Sessions idle inside an open (or aborted) transaction for longer than the bound, oldest first."""
    return _sessions(primary, ("idle in transaction", "idle in transaction (aborted)"), "state_change", longer_than_seconds)


def long_running_queries(primary: psycopg.Connection, longer_than_seconds: float) -> tuple[Session, ...]:
    """Statements still running past the bound, oldest first."""
    return _sessions(primary, ("active",), "query_start", longer_than_seconds)


@dataclass(frozen=True)
class TableScans:
    table: str
    seq_scan: int
    idx_scan: int
    live_rows: int


def seq_scan_heavy_tables(primary: psycopg.Connection, min_seq_scans: int, min_rows: int) -> tuple[TableScans, ...]:
    """Tables read by sequential scan more often than by index, past a count, and large enough for it to matter
    (a small table is rightly scanned whole)."""
    with measuring("PostgreSQL primary"):
        rows = primary.execute(
            """SELECT schemaname || '.' || relname, seq_scan, coalesce(idx_scan, 0), n_live_tup
                 FROM pg_stat_user_tables
                WHERE seq_scan > coalesce(idx_scan, 0) AND seq_scan > %s AND n_live_tup >= %s
                ORDER BY seq_scan DESC""",
            (min_seq_scans, min_rows),
        ).fetchall()
    return tuple(TableScans(*row) for row in rows)


@dataclass(frozen=True)
class Statement:
    calls: int
    total_ms: float
    mean_ms: float
    rows: int
    query: str


@dataclass(frozen=True)
class StatementColumns:
    """pg_stat_statements' timing columns on this server: PostgreSQL 13 renamed ``total_time``/``mean_time``/``max_time``
    to ``total_exec_time``/``mean_exec_time``/``max_exec_time``."""

    total: str
    mean: str
    max: str


def statement_columns(primary: psycopg.Connection) -> StatementColumns | None:
    """The columns to read, or None when the extension is not installed in this database."""
    with measuring("PostgreSQL primary"):
        if primary.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'").fetchone() is None:
            return None
        modern = primary.execute("SELECT current_setting('server_version_num')::int >= 130000").fetchone()[0]
    return StatementColumns(*(f"{name}_exec_time" if modern else f"{name}_time" for name in ("total", "mean", "max")))


def top_statements(primary: psycopg.Connection, limit: int = 10) -> tuple[Statement, ...] | None:
    """pg_stat_statements' statements by total time; None when the extension is not installed."""
    columns = statement_columns(primary)
    if columns is None:
        return None
    with measuring("PostgreSQL primary"):
        rows = primary.execute(
            f"SELECT calls, {columns.total}, {columns.mean}, rows, {ONE_LINE_QUERY} FROM pg_stat_statements "  # noqa: S608 - column names
            f"WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) ORDER BY {columns.total} DESC LIMIT %s",
            (limit,),
        ).fetchall()
    return tuple(Statement(*row[:-1], statement(row[-1])) for row in rows)


@dataclass(frozen=True)
class IndexUse:
    index: str
    table: str
    idx_scan: int


def index_usage(primary: psycopg.Connection) -> tuple[IndexUse, ...]:
    with measuring("PostgreSQL primary"):
        rows = primary.execute(
            """SELECT schemaname || '.' || indexrelname, relname, idx_scan FROM pg_stat_user_indexes
                ORDER BY idx_scan, indexrelname"""
        ).fetchall()
    return tuple(IndexUse(*row) for row in rows)


@dataclass(frozen=True)
class JobQueue:
    pending: int
    running: int
    oldest_pending_seconds: float | None
    stuck_running: tuple[tuple[int, float], ...]  # (job id, seconds running), longest first


def job_queue(primary: psycopg.Connection, stuck_after_seconds: float) -> JobQueue:
    with measuring("PostgreSQL primary"):
        rows = dict(
            (status, (count, age))
            for status, count, age in primary.execute(
                """SELECT status, count(*)::int, extract(epoch FROM now() - min(created_at))::float8
                     FROM optimization_jobs WHERE status IN ('pending', 'running') GROUP BY status"""
            ).fetchall()
        )
        stuck = primary.execute(
            """SELECT id, extract(epoch FROM now() - coalesce(started_at, created_at))::float8
                 FROM optimization_jobs
                WHERE status = 'running' AND coalesce(started_at, created_at) < now() - make_interval(secs => %s)
                ORDER BY 2 DESC LIMIT 20""",
            (stuck_after_seconds,),
        ).fetchall()
    pending = rows.get("pending", (0, None))
    return JobQueue(
        pending=pending[0],
        running=rows.get("running", (0, None))[0],
        oldest_pending_seconds=pending[1],
        stuck_running=tuple((int(i), float(s)) for i, s in stuck),
    )
