"""Database Maintenance (weekly, monthly) and Query Performance Tuning: catalog and statistics reads, one query each.

Each probe is one catalog query whatever the number of tables, so a check's server time stays flat on a large
catalog. The runbook's own queries are wrong in places: ``pg_stat_user_indexes`` has no ``idx_blks_read`` (that
is ``pg_statio_user_indexes``), ``tablename``/``indexname`` are ``relname``/``indexrelname``, and ``mean_time`` is
``mean_exec_time`` since PostgreSQL 13.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import datetime

import psycopg

from entmoot_ops.clients import Clients
from entmoot_ops.probes import measuring
from entmoot_ops.probes.postgres import ONE_LINE_QUERY, statement, statement_columns

# Per-table autovacuum settings override the server's (ALTER TABLE ... SET (autovacuum_...)).
_RELOPTION = "coalesce((SELECT split_part(o, '=', 2) FROM unnest(c.reloptions) o WHERE o LIKE '{name}=%'), current_setting('{name}'))"


@dataclass(frozen=True)
class TableUpkeep:
    table: str
    live_rows: int
    dead_rows: int
    modified_since_analyze: int
    analyze_trigger: float  # modifications after which autovacuum analyzes this table
    vacuum_trigger: float  # dead rows after which autovacuum vacuums it
    last_analyzed: datetime | None  # manual or automatic, the later
    last_vacuumed: datetime | None

    @property
    def dead_ratio(self) -> float:
        return self.dead_rows / max(self.live_rows + self.dead_rows, 1)


def analyze_overdue(tables: tuple[TableUpkeep, ...], factor: float, min_rows: int) -> list[TableUpkeep]:
    """Tables modified more than ``factor`` times their autoanalyze trigger since their last ANALYZE."""
    return [u for u in tables if u.live_rows >= min_rows and u.modified_since_analyze > factor * u.analyze_trigger]


def vacuum_overdue(tables: tuple[TableUpkeep, ...], factor: float, min_rows: int) -> list[TableUpkeep]:
    """Tables holding more than ``factor`` times their autovacuum trigger in dead rows."""
    return [u for u in tables if u.live_rows + u.dead_rows >= min_rows and u.dead_rows > factor * u.vacuum_trigger]


def table_upkeep(primary: psycopg.Connection) -> tuple[TableUpkeep, ...]:
    """Each user table's write activity against the autovacuum thresholds that should have acted on it."""
    analyze_threshold = _RELOPTION.format(name="autovacuum_analyze_threshold")
    analyze_scale = _RELOPTION.format(name="autovacuum_analyze_scale_factor")
    vacuum_threshold = _RELOPTION.format(name="autovacuum_vacuum_threshold")
    vacuum_scale = _RELOPTION.format(name="autovacuum_vacuum_scale_factor")
    with measuring("PostgreSQL primary"):
        rows = primary.execute(
            f"""SELECT s.schemaname || '.' || s.relname, s.n_live_tup, s.n_dead_tup, s.n_mod_since_analyze,
                       {analyze_threshold}::float8 + {analyze_scale}::float8 * greatest(c.reltuples, 0),
                       {vacuum_threshold}::float8 + {vacuum_scale}::float8 * greatest(c.reltuples, 0),
                       greatest(s.last_analyze, s.last_autoanalyze), greatest(s.last_vacuum, s.last_autovacuum)
                  FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
                 ORDER BY 1"""  # noqa: S608 - setting names of this module, not input
        ).fetchall()
    return tuple(TableUpkeep(*row) for row in rows)


@dataclass(frozen=True)
class InvalidIndex:
    index: str
    table: str
    definition: str


def invalid_indexes(primary: psycopg.Connection) -> tuple[InvalidIndex, ...]:
    """Indexes left invalid, e.g. by a CREATE INDEX CONCURRENTLY that failed: written on every insert, never read."""
    with measuring("PostgreSQL primary"):
        rows = primary.execute(
            """SELECT i.indexrelid::regclass::text, i.indrelid::regclass::text, pg_get_indexdef(i.indexrelid)
                 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE NOT i.indisvalid AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                ORDER BY 1"""
        ).fetchall()
    return tuple(InvalidIndex(*row) for row in rows)


@dataclass(frozen=True)
class Wraparound:
    database: str
    xid_age: int
    freeze_max_age: int  # autovacuum forces an anti-wraparound vacuum at this age

    @property
    def ratio(self) -> float:
        return self.xid_age / self.freeze_max_age

    @property
    def headroom(self) -> int:
        """Transactions left before PostgreSQL stops accepting writes (at 2^31 - 3,000,000, by its own guard)."""
        return 2**31 - 3_000_000 - self.xid_age


def wraparound(primary: psycopg.Connection) -> tuple[Wraparound, ...]:
    with measuring("PostgreSQL primary"):
        rows = primary.execute(
            """SELECT datname, age(datfrozenxid), current_setting('autovacuum_freeze_max_age')::bigint
                 FROM pg_database WHERE datallowconn ORDER BY 2 DESC"""
        ).fetchall()
    return tuple(Wraparound(*row) for row in rows)


@dataclass(frozen=True)
class SequenceUse:
    sequence: str
    last_value: int | None  # None: this role may not read it (pg_sequences hides it)
    limit: int  # the sequence's max_value, or the owning column's type maximum when that is lower

    @property
    def ratio(self) -> float:
        return (self.last_value or 0) / self.limit


SEQUENCES_PER_STATEMENT = 1000  # reading last_value locks the sequence: all at once can exhaust the lock table


def sequence_use(primary: psycopg.Connection) -> tuple[SequenceUse, ...]:
    """Ascending sequences by how much of their range is spent. A bigint sequence behind an integer column runs out
    at 2^31 - 1, so the owning column's type bounds it. A sequence this role may not read has no last_value here
    (pg_sequences shows NULL for it and for one never used alike: the privilege tells them apart)."""
    with measuring("PostgreSQL primary"):
        # From the catalog by OID: a name cast to regclass would need USAGE on its schema.
        listed = primary.execute(
            """SELECT c.oid, n.nspname || '.' || c.relname, s.seqstart, has_sequence_privilege(c.oid, 'SELECT,USAGE'),
                      least(s.seqmax, coalesce(
                          (SELECT CASE a.atttypid WHEN 'int2'::regtype THEN 32767 WHEN 'int4'::regtype THEN 2147483647 END
                             FROM pg_depend d JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                            WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i') LIMIT 1), s.seqmax))
                 FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE s.seqincrement > 0 AND n.nspname NOT IN ('pg_catalog', 'information_schema')"""
        ).fetchall()
        readable = [oid for oid, _, _, allowed, _ in listed if allowed]
        last: dict[int, int | None] = {}
        for start in range(0, len(readable), SEQUENCES_PER_STATEMENT):
            chunk = readable[start:start + SEQUENCES_PER_STATEMENT]
            last.update(primary.execute("SELECT oid, pg_sequence_last_value(oid) FROM unnest(%s::oid[]) oid", (chunk,)).fetchall())
    found = [SequenceUse(name, (last.get(oid) or first) if allowed else None, limit) for oid, name, first, allowed, limit in listed]
    return tuple(sorted(found, key=lambda s: (s.last_value is not None, -s.ratio)))


@dataclass(frozen=True)
class IndexScans:
    index: str
    table: str
    size_bytes: int
    scans: int  # on the primary and every replica given
    observed_since: datetime  # the oldest of the servers' statistics resets (or starts, when never reset)


def unused_indexes(primary: psycopg.Connection, replicas: tuple[psycopg.Connection, ...] = ()) -> tuple[IndexScans, ...]:
    """Indexes never scanned, counting the replicas' scans too (reads that run there use the same indexes). Unique,
    primary-key and constraint indexes are excluded: they enforce something even when never read."""
    query = """SELECT s.schemaname || '.' || s.indexrelname, s.schemaname || '.' || s.relname, pg_relation_size(s.indexrelid),
                      s.idx_scan, coalesce((SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()),
                                           pg_postmaster_start_time())
                 FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid
                WHERE NOT i.indisunique AND NOT i.indisprimary
                  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = s.indexrelid)"""
    with measuring("PostgreSQL primary"):
        found = {row[0]: list(row) for row in primary.execute(query)}
    for replica in replicas:
        with measuring("PostgreSQL replica"):
            for name, _, _, scans, since in replica.execute(query):
                if name in found:
                    found[name][3] += scans
                    found[name][4] = max(found[name][4], since)  # observed only since the latest reset anywhere
    return tuple(IndexScans(*row) for row in sorted(found.values()) if row[3] == 0)


def unused_indexes_everywhere(clients: Clients) -> tuple[IndexScans, ...]:
    """:func:`unused_indexes` over the primary and every replica the environment names with a DSN."""
    settings = clients.env.postgres
    with contextlib.ExitStack() as sessions:  # each session given back, whichever of them failed to open
        primary = sessions.enter_context(clients.postgres(settings.primary_dsn, name="primary"))
        replicas = tuple(sessions.enter_context(clients.postgres(r.dsn, name=r.name)) for r in settings.replicas if r.dsn)
        return unused_indexes(primary, replicas)


@dataclass(frozen=True)
class RedundantIndex:
    index: str
    covered_by: str
    table: str
    definition: str


def redundant_indexes(primary: psycopg.Connection) -> tuple[RedundantIndex, ...]:
    """Indexes whose columns (same operator classes, no expressions, no predicate) are the leading columns of another
    index of the same table and access method: the other serves every query this one does. A unique or primary-key
    index is only redundant with an identical one."""
    with measuring("PostgreSQL primary"):
        rows = primary.execute(
            """WITH idx AS (
                 SELECT i.indexrelid, i.indrelid, i.indisunique OR i.indisprimary AS enforces, c.relam,
                        string_to_array(i.indkey::text, ' ') AS keys, string_to_array(i.indclass::text, ' ') AS classes
                   FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                  WHERE i.indexprs IS NULL AND i.indpred IS NULL AND i.indisvalid)
               SELECT a.indexrelid::regclass::text, b.indexrelid::regclass::text, a.indrelid::regclass::text,
                      pg_get_indexdef(a.indexrelid)
                 FROM idx a JOIN idx b ON a.indrelid = b.indrelid AND a.relam = b.relam AND a.indexrelid <> b.indexrelid
                WHERE a.keys = b.keys[1:cardinality(a.keys)] AND a.classes = b.classes[1:cardinality(a.classes)]
                  AND (NOT a.enforces OR a.keys = b.keys)
                  -- of two identical indexes, name one (the later), not both
                  AND (a.keys <> b.keys OR a.enforces < b.enforces OR (a.enforces = b.enforces AND a.indexrelid > b.indexrelid))
                  AND a.indrelid::regclass::text NOT LIKE 'pg_%'
                ORDER BY 3, 1"""
        ).fetchall()
    return tuple(RedundantIndex(*row) for row in rows)


@dataclass(frozen=True)
class OldJobs:
    count: int
    oldest: datetime | None


def old_jobs(primary: psycopg.Connection, older_than_days: float) -> OldJobs:
    """Finished jobs (completed or failed) older than the retention, still in optimization_jobs."""
    with measuring("PostgreSQL primary"):
        count, oldest = primary.execute(
            """SELECT count(*)::int, min(completed_at) FROM optimization_jobs
                WHERE status IN ('completed', 'failed') AND completed_at < now() - make_interval(days => %s)""",
            (older_than_days,)).fetchone()
    return OldJobs(count, oldest)


@dataclass(frozen=True)
class SlowStatement:
    role: str
    calls: int
    mean_ms: float
    max_ms: float
    total_ms: float
    query: str


def slow_statements(primary: psycopg.Connection, roles: tuple[str, ...], *, mean_above_ms: float, frequent_mean_above_ms: float,
                    frequent_min_calls: int) -> tuple[SlowStatement, ...] | None:
    """The runbook's two rules over pg_stat_statements, for the given roles: mean above ``mean_above_ms``, or mean above
    ``frequent_mean_above_ms`` with more than ``frequent_min_calls`` calls; by total time. None without the extension."""
    columns = statement_columns(primary)
    if columns is None:
        return None
    mean, top, total = columns.mean, columns.max, columns.total
    with measuring("PostgreSQL primary"):
        rows = primary.execute(
            f"""SELECT r.rolname, s.calls, s.{mean}, s.{top}, s.{total}, {ONE_LINE_QUERY.replace('query', 's.query')}
                  FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid
                 WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND r.rolname = ANY(%s)
                   AND (s.{mean} > %s OR (s.{mean} > %s AND s.calls > %s))
                 ORDER BY s.{total} DESC LIMIT 20""",  # noqa: S608 - column names of this module, not input
            (list(roles), mean_above_ms, frequent_mean_above_ms, frequent_min_calls)).fetchall()
    return tuple(SlowStatement(*row[:-1], statement(row[-1])) for row in rows)


@dataclass(frozen=True)
class Plan:
    statement: str
    node_types: tuple[str, ...]
    indexes: tuple[str, ...]  # the indexes the plan reads

    def uses(self, index: str) -> bool:
        return index in self.indexes


def plan(primary: psycopg.Connection, statement: str) -> Plan:
    """EXPLAIN (no ANALYZE: nothing is executed on a live database) and the plan's node types and indexes."""
    with measuring("PostgreSQL primary"):
        raw = primary.execute(f"EXPLAIN (FORMAT JSON) {statement}").fetchone()[0]  # noqa: S608 - a statement of the config
    document = raw if isinstance(raw, list) else json.loads(raw)
    nodes, indexes = [], []
    stack = [document[0]["Plan"]]
    while stack:
        node = stack.pop()
        nodes.append(node["Node Type"])
        if "Index Name" in node:
            indexes.append(node["Index Name"])
        stack.extend(node.get("Plans", []))
    return Plan(statement, tuple(nodes), tuple(indexes))


def gist_indexes(primary: psycopg.Connection, table: str, column: str) -> tuple[str, ...]:
    """The valid GiST indexes whose first column is ``table.column``."""
    with measuring("PostgreSQL primary"):
        rows = primary.execute(
            """SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                WHERE i.indrelid = to_regclass(%s) AND am.amname = 'gist' AND a.attname = %s AND i.indisvalid ORDER BY 1""",
            (table, column)).fetchall()
    return tuple(row[0] for row in rows)


@dataclass(frozen=True)
class Bloat:
    relation: str
    table: str
    size_bytes: int
    expected_bytes: int  # what the live rows need, from their statistics
    method: str

    @property
    def wasted_bytes(self) -> int:
        return max(self.size_bytes - self.expected_bytes, 0)

    @property
    def ratio(self) -> float:
        return self.wasted_bytes / self.size_bytes if self.size_bytes else 0.0


# A statistical estimate, as check_postgres and pghero make it, for PostgreSQL 13+ page and tuple layouts: a heap tuple
# is a 23-byte header (+ a null bitmap when a column has nulls) padded to 8, then its columns' average widths padded to
# 8, plus a 4-byte line pointer; a page has a 24-byte header and is filled to the table's fillfactor. Tables without
# statistics (never analyzed) have no estimate and are left out, as are those under the size floor.
TABLE_BLOAT = """
WITH widths AS (
    SELECT s.schemaname, s.tablename, sum((1 - s.null_frac) * s.avg_width) AS data_width, max(s.null_frac) > 0 AS has_nulls,
           count(*) AS columns
      FROM pg_stats s WHERE s.schemaname NOT IN ('pg_catalog', 'information_schema') GROUP BY 1, 2),
tables AS (
    SELECT c.oid, n.nspname, c.relname, c.reltuples, c.relpages, current_setting('block_size')::int AS block,
           coalesce((SELECT split_part(o, '=', 2)::int FROM unnest(c.reloptions) o WHERE o LIKE 'fillfactor=%%'), 100) AS fillfactor,
           w.data_width, w.has_nulls, w.columns
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      JOIN widths w ON w.schemaname = n.nspname AND w.tablename = c.relname
     WHERE c.relkind = 'r' AND c.reltuples > 0 AND c.relpages::bigint * current_setting('block_size')::int >= %(min_bytes)s)
SELECT nspname || '.' || relname, nspname || '.' || relname, relpages::bigint * block,
       (ceil(reltuples * (ceil((23 + CASE WHEN has_nulls THEN ceil(columns / 8.0) ELSE 0 END) / 8.0) * 8
                          + ceil(data_width / 8.0) * 8 + 4)
             / ((block - 24) * fillfactor / 100.0)) * block)::bigint
  FROM tables ORDER BY 3 DESC"""

# A B-tree leaf tuple is an 8-byte header and its key columns' widths padded to 8, plus a 4-byte line pointer; a leaf
# page has a 24-byte header and a 16-byte special area and is filled to 90 % by default.
INDEX_BLOAT = """
WITH keys AS (
    SELECT i.indexrelid, i.indrelid, sum((1 - s.null_frac) * s.avg_width) AS key_width
      FROM pg_index i
      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
      JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace
      JOIN pg_stats s ON s.schemaname = n.nspname AND s.tablename = t.relname AND s.attname = a.attname
     WHERE i.indexprs IS NULL AND i.indisvalid GROUP BY 1, 2)
SELECT ni.nspname || '.' || ci.relname, n.nspname || '.' || ct.relname, ci.relpages::bigint * current_setting('block_size')::int,
       ((ceil(ci.reltuples * (8 + ceil(k.key_width / 8.0) * 8 + 4)
              / ((current_setting('block_size')::int - 40) * coalesce(
                  (SELECT split_part(o, '=', 2)::int FROM unnest(ci.reloptions) o WHERE o LIKE 'fillfactor=%%'), 90) / 100.0)) + 1)
        * current_setting('block_size')::int)::bigint
  FROM keys k JOIN pg_class ci ON ci.oid = k.indexrelid JOIN pg_namespace ni ON ni.oid = ci.relnamespace
  JOIN pg_class ct ON ct.oid = k.indrelid JOIN pg_namespace n ON n.oid = ct.relnamespace
  JOIN pg_am am ON am.oid = ci.relam
 WHERE am.amname = 'btree' AND ci.reltuples > 0 AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg_toast%%' AND ci.relpages::bigint * current_setting('block_size')::int >= %(min_bytes)s
 ORDER BY 3 DESC"""


def table_bloat(primary: psycopg.Connection, min_bytes: int) -> tuple[Bloat, ...]:
    with measuring("PostgreSQL primary"):
        rows = primary.execute(TABLE_BLOAT, {"min_bytes": min_bytes}).fetchall()
    return tuple(Bloat(*row, method="statistical estimate (pg_stats widths, PG 13+ heap layout)") for row in rows)


def index_bloat(primary: psycopg.Connection, min_bytes: int) -> tuple[Bloat, ...]:
    with measuring("PostgreSQL primary"):
        rows = primary.execute(INDEX_BLOAT, {"min_bytes": min_bytes}).fetchall()
    return tuple(Bloat(*row, method="statistical estimate (pg_stats key widths, B-tree leaf layout)") for row in rows)
