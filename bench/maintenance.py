"""Prints the server time of each weekly and monthly probe, on the sandbox database and on a catalog of 10,000 tables
and 20,000 indexes that the bench creates (in a schema of its own, dropped afterwards); and the TTL audit's time over
100,000 and 1,000,000 keys with a bounded sample, on a Redis of its own.

The goals: at most 1 s of server time per check on the large catalog (pghero and check_postgres run comparable
catalog queries), and a TTL audit whose time does not grow with the key count.
Usage: python bench/maintenance.py [TABLES]   (uses a running sandbox, else starts its own)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import redis

from entmoot_ops.clients import Clients
from entmoot_ops.config import load_environment
from entmoot_ops.probes import maintenance
from entmoot_ops.probes import redis as redis_probe
from entmoot_ops.sandbox.handle import attach_or_start
from entmoot_ops.sandbox.processes import free_port
from performance_page import recorded

ROOT = Path(__file__).resolve().parent.parent


def _probes(env) -> dict[str, Callable[[psycopg.Connection], object]]:
    t = env.thresholds
    return {
        "table_upkeep (analyze/vacuum freshness)": maintenance.table_upkeep,
        "table_bloat": lambda c: maintenance.table_bloat(c, t.bloat_min_bytes),
        "index_bloat (REINDEX candidates)": lambda c: maintenance.index_bloat(c, t.bloat_min_bytes),
        "invalid_indexes": maintenance.invalid_indexes,
        "wraparound": maintenance.wraparound,
        "sequence_use": maintenance.sequence_use,
        "unused_indexes (primary)": maintenance.unused_indexes,
        "redundant_indexes": maintenance.redundant_indexes,
        "old_jobs": lambda c: maintenance.old_jobs(c, t.job_retention_days),
        "slow_statements": lambda c: maintenance.slow_statements(c, ("entmoot_app",), mean_above_ms=1000, frequent_mean_above_ms=100,
                                                                 frequent_min_calls=100),
        "plan (spatial query)": lambda c: maintenance.plan(c, env.postgres.spatial_query),
    }


def _server_ms(conn: psycopg.Connection) -> float:
    """Execution time of this role's statements so far (pg_stat_statements), the server's side of a probe."""
    return conn.execute("SELECT coalesce(sum(total_exec_time), 0) FROM pg_stat_statements "
                        "WHERE userid = (SELECT oid FROM pg_roles WHERE rolname = current_user)").fetchone()[0]


def _measure(label: str, env, dsn: str) -> None:
    print(label)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for name, probe in _probes(env).items():
            before, started = _server_ms(conn), time.perf_counter()
            probe(conn)
            wall = (time.perf_counter() - started) * 1000
            server = _server_ms(conn) - before
            print(f"  {name:<42} server {server:8.1f} ms   wall {wall:8.1f} ms")


def _large_catalog(dsn: str, tables: int) -> None:
    _drop_catalog(dsn, tables)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA bench_catalog")
        started = time.monotonic()
        for start in range(0, tables, 500):
            with conn.transaction():
                for i in range(start, min(tables, start + 500)):
                    conn.execute(f"CREATE TABLE bench_catalog.t{i} (id bigserial PRIMARY KEY, a int, b int)")
                    conn.execute(f"CREATE INDEX ON bench_catalog.t{i} (a)")
        # As a monitoring role is given it on a real database: what it cannot read, the checks report as such.
        conn.execute("GRANT USAGE ON SCHEMA bench_catalog TO entmoot_monitor")
        conn.execute("GRANT SELECT ON ALL SEQUENCES IN SCHEMA bench_catalog TO entmoot_monitor")
        print(f"  (created {tables} tables, {2 * tables} indexes and {tables} sequences in {time.monotonic() - started:.0f} s)")


def _drop_catalog(dsn: str, tables: int) -> None:
    """In batches: one DROP SCHEMA ... CASCADE of 10,000 tables needs more locks than max_locks_per_transaction allows."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for start in range(0, tables, 500):
            conn.execute("DROP TABLE IF EXISTS " + ", ".join(f"bench_catalog.t{i}" for i in range(start, min(tables, start + 500))))
        conn.execute("DROP SCHEMA IF EXISTS bench_catalog CASCADE")


def _ttl_audit(env_dir: Path) -> None:
    port = free_port()
    scratch = Path(tempfile.mkdtemp(prefix="bench-redis-"))
    server = subprocess.Popen([shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(port), "--bind", "127.0.0.1",
                               "--save", "", "--dir", str(scratch)], stdout=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port)
        for _ in range(50):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.1)
        text = (env_dir / "sandbox.toml").read_text()
        text = text.replace('url = "env:ENTMOOT_SANDBOX_REDIS_URL"\npassword = "env:ENTMOOT_SANDBOX_REDIS_PASSWORD"\n',
                            f'url = "redis://127.0.0.1:{port}/0"\n')
        (env_dir / "sandbox.toml").write_text(text)
        env = load_environment("sandbox", env_dir)
        clients = Clients(env)
        print(f"TTL audit, sample bound {env.redis.ttl_sample_keys} keys, a Redis of its own")
        loaded = 0
        for total in (100_000, 1_000_000):
            for start in range(loaded, total, 10_000):
                with client.pipeline(transaction=False) as pipe:
                    for i in range(start, start + 10_000):
                        prefix = ("constraints:", "project:", "dem:", "session:")[i % 4]
                        pipe.set(f"{prefix}{i}", "x", ex=None if i % 10 == 0 else 300)
                    pipe.execute()
            loaded = total
            started = time.perf_counter()
            audit = redis_probe.ttl_audit(clients, env.redis.ttl_policy, env.redis.ttl_sample_keys)
            print(f"  {total:>9} keys: {(time.perf_counter() - started) * 1000:7.1f} ms, {audit.sampled} sampled, "
                  f"complete {audit.complete}, {audit.without_ttl} without TTL in the sample")
        clients.close()
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    tables = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    sandbox = attach_or_start()
    os.environ.update(sandbox.env)
    env = load_environment("sandbox")
    # The application role owns the database: the large catalog lives in a schema of its own, dropped at the end.
    owner = sandbox.env["ENTMOOT_SANDBOX_PG_ADMIN_DSN"]
    monitor = sandbox.env["ENTMOOT_SANDBOX_PG_PRIMARY_DSN"]
    _measure("weekly and monthly probes, sandbox database (monitoring role)", env, monitor)
    try:
        _large_catalog(owner, tables)
        with psycopg.connect(owner, autocommit=True) as conn:
            conn.execute("ANALYZE")
        _measure(f"the same, with {tables} more tables and {2 * tables} more indexes", env, monitor)
    finally:
        _drop_catalog(owner, tables)
    env_dir = Path(tempfile.mkdtemp(prefix="bench-env-"))
    shutil.copy(ROOT / "environments" / "sandbox.toml", env_dir / "sandbox.toml")
    _ttl_audit(env_dir)
    sandbox.release()


if __name__ == "__main__":
    with recorded("maintenance"):  # and to its section of docs/performance.md
        main()
