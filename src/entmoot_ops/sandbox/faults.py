"""Faults the tests inject into the sandbox, each with its undo.

A fault that produced CloudWatch datapoints (errors, cache misses, evictions, low storage) is undone by
forgetting those datapoints too, so that the next test sees a healthy window again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, UTC
from typing import TYPE_CHECKING, Any

import contextlib
import inspect
import json
import os
import shlex
import signal
import threading
import typing

import psycopg
import redis

from entmoot_ops.sandbox import aws as sandbox_aws
from entmoot_ops.sandbox import moto_extensions
from entmoot_ops.sandbox.api import POOL_ERROR
from entmoot_ops.sandbox.processes import process_tree, wait_until

if TYPE_CHECKING:
    from entmoot_ops.sandbox.core import Target

GIB = 1024**3
APP_ROLE = "entmoot_app"


@dataclass
class Active:
    name: str
    params: dict[str, Any]
    since: datetime
    undo: Callable[[], None]


def _api(sandbox: Target, **faults: Any) -> Callable[[], None]:
    sandbox.api_admin("/_sandbox/faults", {k: v for k, v in faults.items()})
    defaults = {"error_rate": 0.0, "latency_ms": 0.0, "degraded": False, "degraded_detail": "", "worker_paused": False, "versions": {},
                "auth_disabled": False, "storage_fallback": False, "task_rate": 0.0,
                "error_message": POOL_ERROR, "slow_paths": {}, "clock_skew_seconds": 0.0}
    return lambda: sandbox.api_admin("/_sandbox/faults", {k: defaults[k] for k in faults})


def _forgetting_traffic(sandbox: Target, since: datetime, undo_api: Callable[[], None]) -> Callable[[], None]:
    """The undo of an API fault whose requests reached CloudWatch: stop the fault, let the requests in flight finish
    and publish them (one that began under the fault ends after it), then forget its datapoints (the load
    balancer's, and the fleet's CPU) and its log lines."""
    def undo() -> None:
        undo_api()
        sandbox.api_admin("/_sandbox/flush", {"drain": True})
        sandbox.forget_since(since)
    return undo


def api_errors(sandbox: Target, since: datetime, rate: float = 0.5, message: str = POOL_ERROR) -> Callable[[], None]:
    """A share of the API's requests fail, logging ``message`` (a pool timeout by default; an external timeout...)."""
    return _forgetting_traffic(sandbox, since, _api(sandbox, error_rate=rate, error_message=message))


def slow_endpoints(sandbox: Target, since: datetime, paths: dict | None = None) -> Callable[[], None]:
    """Requests to some paths take longer ({prefix: extra ms}): slow endpoints in the logs and the ALB's p95."""
    return _forgetting_traffic(sandbox, since, _api(sandbox, slow_paths=paths or {"/api/buildings": 1500}))


def memory_leak(sandbox: Target, since: datetime, percent: float = 96) -> Callable[[], None]:
    """The tasks' MemoryUtilization climbs to ``percent``, as a leak before the OOM kill."""
    sandbox.agent.leaked_memory_percent = percent

    def undo() -> None:
        sandbox.agent.leaked_memory_percent = None
        sandbox.agent.rewind("AWS/ECS", since)
    return undo


def api_latency(sandbox: Target, since: datetime, ms: float = 800) -> Callable[[], None]:
    """Every API request takes ``ms`` longer: the ALB's response time and p95 rise."""
    return _forgetting_traffic(sandbox, since, _api(sandbox, latency_ms=ms))


def api_degraded(sandbox: Target, since: datetime, detail: str = "") -> Callable[[], None]:
    """The API's health endpoint says degraded (with HTTP 200, as many services do: only the body tells); with a
    ``detail``, a component says "error: DETAIL" (services quote their errors there, connection strings and all)."""
    return _api(sandbox, degraded=True, degraded_detail=detail)


def api_auth_disabled(sandbox: Target, since: datetime) -> Callable[[], None]:
    """The API serves /api/ without asking for a credential, as a release shipped with authentication off."""
    return _api(sandbox, auth_disabled=True)


def api_storage_fallback(sandbox: Target, since: datetime) -> Callable[[], None]:
    """The API fell back to in-memory storage (started while Redis was away) and still says healthy."""
    return _api(sandbox, storage_fallback=True)


def api_task_rate(sandbox: Target, since: datetime, rate: float = 1000.0) -> Callable[[], None]:
    """Another capacity per ECS task (requests a second): a benchmark lifts the ceiling to measure the load side; a
    test lowers it to saturate the fleet, whose slow requests and busy CPU are forgotten with the fault."""
    return _forgetting_traffic(sandbox, since, _api(sandbox, task_rate=rate))


def ecs_stuck_rollout(sandbox: Target, since: datetime) -> Callable[[], None]:
    """The service's rollout held one task short of its desired count: the deployment never completes."""
    sandbox.agent.stuck_rollout = True
    sandbox.agent.tick()

    def undo() -> None:
        sandbox.agent.stuck_rollout = False
        sandbox.agent.tick()
    return undo


def alarm(sandbox: Target, since: datetime, name: str = sandbox_aws.ALARMS[0], state: str = "ALARM",
          reason: str = "Threshold Crossed: 1 datapoint [4.2] was greater than the threshold (1.0).") -> Callable[[], None]:
    """A CloudWatch alarm (``name``) set to ``state`` with ``reason``; undo sets it back to OK."""
    cloudwatch = sandbox.aws.client("cloudwatch")
    cloudwatch.set_alarm_state(AlarmName=name, StateValue=state, StateReason=reason)
    return lambda: cloudwatch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="sandbox: healthy")


def component_killed(sandbox: Target, since: datetime, component: str = "redis") -> Callable[[], None]:
    """The component's server stops (the API, the PostgreSQL primary or replica, Redis); undo starts it again and,
    as for every fault, forgets the slow and failed requests it caused."""
    sandbox.component(component, "stop")
    return _forgetting_traffic(sandbox, since, lambda: sandbox.component(component, "start"))


def component_frozen(sandbox: Target, since: datetime, component: str = "redis") -> Callable[[], None]:
    """SIGSTOP on the component's whole process tree: connections are accepted by the kernel, nothing answers."""
    pid = sandbox.pid_of(component)
    if pid is None:
        raise KeyError(f"{component} is not running")
    frozen = process_tree(pid)
    for member in frozen:
        os.kill(member, signal.SIGSTOP)

    def undo() -> None:
        for member in reversed(frozen):
            with contextlib.suppress(ProcessLookupError):
                os.kill(member, signal.SIGCONT)
    return _forgetting_traffic(sandbox, since, undo)


def dependency_latency(sandbox: Target, since: datetime, dependency: str = "redis", ms: float = 1500) -> Callable[[], None]:
    """Every answer of Redis or the primary reaches the API ``ms`` late (the suite's own probes are not slowed)."""
    sandbox.proxy_route(dependency, latency_ms=ms)
    return _forgetting_traffic(sandbox, since, lambda: sandbox.proxy_route(dependency))


def dependency_blackhole(sandbox: Target, since: datetime, dependency: str = "redis") -> Callable[[], None]:
    """Between the API and Redis or the primary, connections are accepted and nothing goes through either way."""
    sandbox.proxy_route(dependency, blackhole=True)
    return _forgetting_traffic(sandbox, since, lambda: sandbox.proxy_route(dependency))


def aws_throttled(sandbox: Target, since: datetime, service: str = "ecs", calls: int = 1_000_000) -> Callable[[], None]:
    """An AWS API (its IAM prefix: ecs, cloudwatch, logs...) answers Rate exceeded to the next ``calls`` calls."""
    moto_extensions.throttled[service] = calls
    return lambda: moto_extensions.throttled.pop(service, None)


def insights_slow(sandbox: Target, since: datetime, seconds: float = 3) -> Callable[[], None]:
    """Logs Insights queries stay Running for ``seconds`` (a busy account), polled until they complete."""
    before = moto_extensions.insights_timing["complete"]
    moto_extensions.insights_timing["complete"] = seconds
    return lambda: moto_extensions.insights_timing.update(complete=before)


def insights_failed(sandbox: Target, since: datetime) -> Callable[[], None]:
    """Logs Insights queries end Failed: the suite reads the raw events instead (FilterLogEvents)."""
    moto_extensions.insights_failing = True
    return lambda: setattr(moto_extensions, "insights_failing", False)


def redis_flushed(sandbox: Target, since: datetime) -> Callable[[], None]:
    """The cache emptied (FLUSHALL): nothing to undo, the application fills it again."""
    sandbox.redis.client().flushall()
    return lambda: None


@contextlib.contextmanager
def _unrecorded(sandbox: Target, role: str = "postgres", server: Any = None) -> Iterator[psycopg.Connection]:
    """A session of the sandbox's own making, as ``role`` (the objects it creates are that role's), whose statements
    pg_stat_statements does not record: a fault's setup is not the application's workload, and on a slow machine
    its bulk writes would otherwise read as the application's slow statements long after the fault is undone."""
    with psycopg.connect(sandbox.postgres.dsn("postgres", server=server), autocommit=True, connect_timeout=2) as conn:
        conn.execute("SET pg_stat_statements.track = 'none'")  # a superuser's setting: hence the session as postgres
        if role != "postgres":
            conn.execute(f"SET ROLE {role}")
        yield conn


def _superuser(sandbox: Target, server: Any, sql: str) -> None:
    with _unrecorded(sandbox, server=server) as conn:
        conn.execute(sql)


def replica_paused(sandbox: Target, since: datetime) -> Callable[[], None]:
    """WAL replay paused on the replica: its lag grows while the primary writes."""
    replica = sandbox.postgres.replica
    _superuser(sandbox, replica, "SELECT pg_wal_replay_pause()")

    def undo() -> None:
        _superuser(sandbox, replica, "SELECT pg_wal_replay_resume()")
        sandbox.agent.rewind("AWS/RDS", since)
    return undo


def slot_inactive(sandbox: Target, since: datetime) -> Callable[[], None]:
    """A physical replication slot no replica uses, retaining WAL on the primary."""
    primary = sandbox.postgres.primary
    _superuser(sandbox, primary, "SELECT pg_create_physical_replication_slot('orphaned_replica', true)")
    _superuser(sandbox, primary, "CHECKPOINT")
    return lambda: _superuser(sandbox, primary, "SELECT pg_drop_replication_slot('orphaned_replica')")


def redis_memory_pressure(sandbox: Target, since: datetime) -> Callable[[], None]:
    """Redis filled to a maxmemory just above its use: keys are evicted."""
    client = sandbox.redis.client()
    original = client.config_get("maxmemory")["maxmemory"]
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory", used + 2 * 1024 * 1024)
    value = "x" * 4096
    start = int(client.info("stats")["evicted_keys"])
    batch = 0
    # Batched writes: one huge pipeline can hit OOM even under allkeys-lru.
    while int(client.info("stats")["evicted_keys"]) == start and batch < 100:
        with client.pipeline(transaction=False) as pipe:
            for i in range(200):
                pipe.set(f"sandbox:filler:{batch}:{i}", value)
            pipe.execute()
        batch += 1
    sandbox.agent.tick()

    def undo() -> None:
        client.config_set("maxmemory", original)
        for key in client.scan_iter("sandbox:filler:*", count=1000):
            client.delete(key)
        sandbox.agent.tick()
        sandbox.agent.rewind("AWS/ElastiCache", since)
    return undo


def redis_password_changed(sandbox: Target, since: datetime) -> Callable[[], None]:
    """The AUTH token is rotated on the server and nobody updated the clients' secret: their new connections get
    WRONGPASS (a client that sends no password gets NOAUTH). The sandbox's own clients follow the rotation."""
    client = sandbox.redis.client()
    old = sandbox.redis.password
    new = old + "-rotated"
    client.config_set("requirepass", new)
    sandbox.redis.password = new

    def undo() -> None:
        sandbox.redis.client().config_set("requirepass", old)
        sandbox.redis.password = old
    return undo


def redis_oom(sandbox: Target, since: datetime) -> Callable[[], None]:
    """maxmemory-policy noeviction and a Redis filled to its maxmemory: writes fail with OOM, reads still work."""
    client = sandbox.redis.client()
    original = client.config_get("maxmemory*")
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", int(client.info("memory")["used_memory"]) + 1024 * 1024)
    value = "x" * 4096
    with contextlib.suppress(redis.exceptions.OutOfMemoryError):
        for batch in range(1000):
            with client.pipeline(transaction=False) as pipe:
                for i in range(50):
                    pipe.set(f"sandbox:oom:{batch}:{i}", value)
                pipe.execute()

    def undo() -> None:
        client.config_set("maxmemory", original["maxmemory"])
        client.config_set("maxmemory-policy", original["maxmemory-policy"])
        for key in client.scan_iter("sandbox:oom:*", count=1000):
            client.delete(key)
    return undo


def redis_keys_without_ttl(sandbox: Target, since: datetime, count: int = 200) -> Callable[[], None]:
    """Constraint data cached with no TTL, and API responses cached for 10 days instead of 5 minutes."""
    client = sandbox.redis.client()
    with client.pipeline(transaction=False) as pipe:
        for i in range(count):
            pipe.set(f"constraints:sandbox:{i}", "{}")
            pipe.set(f"project:{900000 + i}", "{}", ex=10 * 86400)
        pipe.execute()

    def undo() -> None:
        for pattern in ("constraints:sandbox:*", "project:9?????"):
            for key in client.scan_iter(pattern, count=1000):
                client.delete(key)
    return undo


def redis_client_pressure(sandbox: Target, since: datetime, clients: int = 8) -> Callable[[], None]:
    """Hold idle clients, then lower maxclients to just above them: little headroom, one new client still fits."""
    admin = sandbox.redis.client()
    original = admin.config_get("maxclients")["maxclients"]
    held = [sandbox.redis.client() for _ in range(clients)]
    for client in held:
        client.ping()
    admin.config_set("maxclients", int(admin.info("clients")["connected_clients"]) + 2)

    def undo() -> None:
        admin.config_set("maxclients", original)
        for client in held:
            client.close()
    return undo


def redis_cold_cache(sandbox: Target, since: datetime, misses: int = 30000) -> Callable[[], None]:
    """``misses`` reads of keys that are not there: the cache hit rate collapses."""
    client = sandbox.redis.client()
    for start in range(0, misses, 1000):
        with client.pipeline(transaction=False) as pipe:
            for i in range(start, min(start + 1000, misses)):
                pipe.get(f"sandbox:cold:{i}")
            pipe.execute()
    sandbox.agent.tick()
    return lambda: sandbox.agent.rewind("AWS/ElastiCache", since)


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
    undo_worker = _api(sandbox, worker_paused=True)
    with _unrecorded(sandbox, APP_ROLE) as conn:
        ids = [row[0] for row in conn.execute(
            "INSERT INTO optimization_jobs (project_id, status, created_at, started_at) VALUES "
            "(1, 'pending', now() - interval '2 hours', NULL), "
            "(2, 'running', now() - interval '3 hours', now() - interval '3 hours') RETURNING id").fetchall()]

    def undo() -> None:
        with _unrecorded(sandbox, APP_ROLE) as conn:
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
    with _unrecorded(sandbox) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                            "AND query LIKE '%sandbox long query%' AND pid <> pg_backend_pid()").fetchone()[0]


def seq_scans(sandbox: Target, since: datetime, rows: int = 12000, scans: int = 1100) -> Callable[[], None]:
    """A large table without the index its queries need, read by sequential scan again and again; the scans are
    the application's (the index suggestion reads them in pg_stat_statements), and undo forgets them there."""
    # The inserts reach the statistics before ANALYZE, not after it: otherwise the table reads as 12,000 rows
    # modified since its ANALYZE, a second condition (postgres.analyze-fresh) this fault does not mean to cause.
    _as_app(sandbox, "CREATE TABLE sandbox_scans (id int, kind text)",
            f"INSERT INTO sandbox_scans SELECT g, md5(g::text) FROM generate_series(1, {int(rows)}) g")
    _as_app(sandbox, "ANALYZE sandbox_scans")
    with _application_session(sandbox) as conn:
        for i in range(scans):
            conn.execute("SELECT count(*) FROM sandbox_scans WHERE kind = %s", (str(i),))
    # Closing the session flushed its statistics: pg_stat_user_tables counts every scan now.

    def undo() -> None:
        _as_app(sandbox, "DROP TABLE sandbox_scans")
        _forget_statements(sandbox, "sandbox_scans")
    return undo


def _application_session(sandbox: Target) -> psycopg.Connection:
    """A session of the application's role whose statements pg_stat_statements records: a fault's workload."""
    return psycopg.connect(sandbox.postgres.dsn(APP_ROLE), autocommit=True, connect_timeout=2)


def _forget_statements(sandbox: Target, marker: str) -> None:
    """Remove from pg_stat_statements the statements a fault made the application run: the undo of its workload."""
    _superuser(sandbox, sandbox.postgres.primary, "SELECT pg_stat_statements_reset(userid, dbid, queryid) FROM pg_stat_statements "
                                                  f"WHERE query LIKE '%{marker}%'")


def _as_app(sandbox: Target, *statements: str) -> None:
    with _unrecorded(sandbox, APP_ROLE) as conn:
        for statement in statements:
            conn.execute(statement)
        conn.execute("SELECT pg_stat_force_next_flush()")  # the statistics views see it now, not within a second


def _maintenance_fault(sandbox: Target, make: tuple[str, ...], undo: tuple[str, ...]) -> Callable[[], None]:
    _as_app(sandbox, *make)
    return lambda: _as_app(sandbox, *undo)


def stale_table(sandbox: Target, since: datetime) -> Callable[[], None]:
    """A 20,000-row table autovacuum may not touch, three quarters of it rewritten since its ANALYZE: stale statistics
    and dead rows both far past their autovacuum triggers."""
    _as_app(sandbox, "CREATE TABLE sandbox_upkeep (id int PRIMARY KEY, v int) WITH (autovacuum_enabled = false)",
            "INSERT INTO sandbox_upkeep SELECT g, 0 FROM generate_series(1, 20000) g")
    # A session of its own: the ANALYZE must come after the inserts' counts reached the statistics.
    undo = _maintenance_fault(sandbox, ("ANALYZE sandbox_upkeep", "UPDATE sandbox_upkeep SET v = 1 WHERE id <= 15000"),
                              ("DROP TABLE IF EXISTS sandbox_upkeep",))
    _wait_for_xmin_horizon(sandbox)  # the fault is ready once a VACUUM could remove those dead rows
    return undo


def _wait_for_xmin_horizon(sandbox: Target) -> None:
    """The replica's hot_standby_feedback holds the xmin horizon back for up to wal_receiver_status_interval (10 s):
    until it passes the last write, no VACUUM can remove the rows that write made dead."""
    with _unrecorded(sandbox) as conn:
        after = conn.execute("SELECT txid_current() % 4294967296").fetchone()[0]
        wait_until(lambda: conn.execute("SELECT coalesce(bool_and(xmin IS NULL OR xmin::text::bigint > %s), true) "
                                        "FROM pg_replication_slots", (after,)).fetchone()[0], what="xmin horizon past the last write",
                   timeout=30)


def bloated_table(sandbox: Target, since: datetime, rows: int = 200000) -> Callable[[], None]:
    """Four rows in five deleted across the whole table and vacuumed: the pages (and the key's index pages) stay,
    mostly empty, as after a mass delete."""
    _as_app(sandbox, "CREATE TABLE sandbox_bloat (id int PRIMARY KEY, payload text) WITH (autovacuum_enabled = false)",
            f"INSERT INTO sandbox_bloat SELECT g, md5(g::text) FROM generate_series(1, {int(rows)}) g",
            "DELETE FROM sandbox_bloat WHERE id % 5 <> 0")
    _wait_for_xmin_horizon(sandbox)  # so that the VACUUM below removes the deleted rows and only their space remains
    return _maintenance_fault(sandbox, ("VACUUM sandbox_bloat", "ANALYZE sandbox_bloat"), ("DROP TABLE IF EXISTS sandbox_bloat",))


def invalid_index(sandbox: Target, since: datetime) -> Callable[[], None]:
    """An index left invalid, as a failed CREATE INDEX CONCURRENTLY leaves one (marked so in the catalog)."""
    _as_app(sandbox, "CREATE INDEX sandbox_invalid_idx ON optimizations (created_at)")
    _superuser(sandbox, sandbox.postgres.primary,
               "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'public.sandbox_invalid_idx'::regclass")
    return lambda: _as_app(sandbox, "DROP INDEX IF EXISTS sandbox_invalid_idx")


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
    with _unrecorded(sandbox, APP_ROLE) as conn:
        ids = [row[0] for row in conn.execute(
            "INSERT INTO optimization_jobs (project_id, status, created_at, started_at, completed_at) "
            "SELECT 1 + g %% 200, 'completed', now() - make_interval(days => %s), now() - make_interval(days => %s), "
            "now() - make_interval(days => %s) + interval '1 minute' FROM generate_series(1, %s) g RETURNING id",
            (days, days, days, count)).fetchall()]

    def undo() -> None:
        with _unrecorded(sandbox, APP_ROLE) as conn:
            conn.execute("DELETE FROM optimization_jobs WHERE id = ANY(%s)", (ids,))
            conn.execute("DELETE FROM optimization_jobs_archive WHERE id = ANY(%s)", (ids,))
    return undo


def slow_statement(sandbox: Target, since: datetime, seconds: float = 1.2) -> Callable[[], None]:
    """One statement of the application slower than a second, in pg_stat_statements; undo forgets it there."""
    with _application_session(sandbox) as conn:
        conn.execute(f"SELECT pg_sleep({float(seconds)}) /* sandbox slow statement */")
    return lambda: _forget_statements(sandbox, "sandbox slow statement")


def _wait_for_version(sandbox: Target, version: str) -> None:
    wait_until(lambda: sandbox.api_health()["version"] == version and not sandbox.agent.rollout_moving,
               what=f"rollout of {version}", timeout=30)


def deploy(sandbox: Target, since: datetime, version: str = "1.5.0", error_rate: float = 0.0, latency_ms: float = 0.0,
           wait: bool = True) -> Callable[[], None]:
    """A release as the user's pipeline makes it (new image tag, new revision, service updated); the sandbox
    rolls it out over a few seconds. ``error_rate``/``latency_ms`` make it a bad release. Undo returns the
    service to the revision it ran before and forgets the release's traffic metrics."""
    baseline_version = sandbox.api_health()["version"]
    baseline = sandbox.aws.service_task_definition()
    if error_rate or latency_ms:
        sandbox.api_admin("/_sandbox/faults", {"versions": {version: {"error_rate": error_rate, "latency_ms": latency_ms}}})
    sandbox.aws.deploy(version)
    if wait:
        _wait_for_version(sandbox, version)

    def restore() -> None:
        sandbox.aws.client("ecs").update_service(cluster=sandbox_aws.CLUSTER, service=sandbox_aws.SERVICE, taskDefinition=baseline)
        _wait_for_version(sandbox, baseline_version)
        sandbox.api_admin("/_sandbox/faults", {"versions": {}})
    return _forgetting_traffic(sandbox, since, restore)


def stale_backups(sandbox: Target, since: datetime, hours: float = 30) -> Callable[[], None]:
    """The latest automated snapshots ``hours`` old: backups look stale."""
    sandbox.aws.set_snapshot_times(-timedelta(hours=hours))
    return lambda: sandbox.aws.set_snapshot_times(timedelta(hours=hours))


def pitr_lag(sandbox: Target, since: datetime, minutes: float = 45) -> Callable[[], None]:
    """The latest restorable time ``minutes`` behind: point-in-time recovery lags."""
    sandbox.aws.set_restore_lag(minutes * 60)
    return lambda: sandbox.aws.set_restore_lag(0)


def _unusual(kind: str, principal: str | None, at: datetime) -> list[dict]:
    account = sandbox_aws.ACCOUNT
    user = principal or f"arn:aws:iam::{account}:user/mallory"
    event = sandbox_aws.trail_event
    kinds = {
        "root_usage": lambda: [event("GetAccountSummary", "iam.amazonaws.com", f"arn:aws:iam::{account}:root", at,
                                     read_only=True, user_type="Root")],
        "console_no_mfa": lambda: [event("ConsoleLogin", "signin.amazonaws.com", user, at, user_type="IAMUser",
                                         additional={"MFAUsed": "No", "LoginTo": "https://console.aws.amazon.com"})],
        "iam_change": lambda: [event("CreateAccessKey", "iam.amazonaws.com", user, at, request={"userName": "ci-bot"})],
        "sg_open": lambda: [event("AuthorizeSecurityGroupIngress", "ec2.amazonaws.com", user, at, request={
            "groupId": "sg-0db", "ipPermissions": {"items": [{"fromPort": 5432, "toPort": 5432,
                                                               "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]}}]}})],
        "kms_disable": lambda: [event("ScheduleKeyDeletion", "kms.amazonaws.com", user, at, request={"keyId": "k-1"})],
        "db_delete": lambda: [event("DeleteDBSnapshot", "rds.amazonaws.com", user, at,
                                    request={"dBSnapshotIdentifier": "entmoot-before-migration"})],
        "trail_stopped": lambda: [event("StopLogging", "cloudtrail.amazonaws.com", user, at, request={"name": "entmoot"})],
        "access_denied_burst": lambda: [event("UpdateService", "ecs.amazonaws.com", user, at + timedelta(seconds=i),
                                              error_code="AccessDenied") for i in range(30)],
    }
    if kind not in kinds:
        raise KeyError(f"unknown CloudTrail event kind {kind!r} (known: {', '.join(sorted(kinds))})")
    return kinds[kind]()


def cloudtrail_event(sandbox: Target, since: datetime, kind: str = "root_usage", principal: str | None = None,
                     hours_ago: float = 1) -> Callable[[], None]:
    """An unusual CloudTrail event of ``kind`` (root usage, console login without MFA...) ``hours_ago``."""
    at = since - timedelta(hours=hours_ago)
    if at.weekday() == 6 and 2 <= at.hour < 3:
        # Sunday 02:00-03:00 UTC is sandbox.toml's change window, which excuses a change: an hour earlier, the event
        # is unusual whatever the time of day the fault is injected at.
        at -= timedelta(hours=1)
    ids = moto_extensions.add_trail_events(_unusual(kind, principal, at))
    return lambda: moto_extensions.remove_trail_events(ids)


def traffic_drop(sandbox: Target, since: datetime, factor: float = 0.2) -> Callable[[], None]:
    """Less traffic than usual: every count of the load balancer scaled down alike, so that ratios (the error
    rate) stay what they were."""
    counts = ("RequestCount", "HTTPCode_Target_2XX_Count", "HTTPCode_Target_5XX_Count", "HTTPCode_ELB_5XX_Count")
    return sandbox.aws.scale_metric("AWS/ApplicationELB", counts, since - timedelta(hours=24), factor)


def certificate_expiring(sandbox: Target, since: datetime, days: float = 3) -> Callable[[], None]:
    """The HTTPS listener serves (and ACM holds) a certificate that expires in ``days``: a renewal nobody did."""
    sandbox.reissue_api_certificate(days=days)
    return sandbox.reissue_api_certificate


def certificate_wrong_host(sandbox: Target, since: datetime, name: str = "entmoot-old.example.net") -> Callable[[], None]:
    """The HTTPS listener serves a certificate for another host name (the wrong one imported)."""
    sandbox.reissue_api_certificate(names=(name,))
    return sandbox.reissue_api_certificate


def clock_skew(sandbox: Target, since: datetime, seconds: float = 5) -> Callable[[], None]:
    """The API's clock (its Date header, the on-call host's reference) is ``seconds`` off."""
    return _api(sandbox, clock_skew_seconds=seconds)


def tool_missing(sandbox: Target, since: datetime, tool: str = "jq") -> Callable[[], None]:
    """The SSH host's PATH has no ``tool``, as a bastion built without it."""
    target = sandbox.ssh_host.remove_program(tool)
    return lambda: sandbox.ssh_host.restore_program(tool, target)


def redis_requirepass_missing(sandbox: Target, since: datetime) -> Callable[[], None]:
    """redis.conf has lost its requirepass: the next restart brings Redis up without a password."""
    sandbox.redis.write_config(requirepass=False)
    return sandbox.redis.write_config


FAULTS: dict[str, Callable[..., Callable[[], None]]] = {
    f.__name__: f for f in (api_errors, slow_endpoints, memory_leak, api_latency, api_degraded, api_auth_disabled,
                            api_storage_fallback, api_task_rate,
                            ecs_stuck_rollout, alarm, component_killed, component_frozen, dependency_latency,
                            dependency_blackhole, aws_throttled, insights_slow, insights_failed, redis_flushed,
                            redis_password_changed, redis_oom, redis_keys_without_ttl,
                            replica_paused, slot_inactive, redis_memory_pressure, redis_client_pressure,
                            redis_cold_cache, rds_cpu_pressure, rds_low_storage, rds_unavailable,
                            jobs_stuck, idle_sessions, idle_in_transaction, long_query, seq_scans,
                            deploy, stale_backups, pitr_lag, cloudtrail_event, traffic_drop, stale_table, invalid_index,
                            unused_index, redundant_index, sequence_near_exhaustion, gist_dropped, old_jobs, slow_statement,
                            bloated_table, certificate_expiring, certificate_wrong_host, clock_skew, tool_missing,
                            redis_requirepass_missing)
}


def parameters(name: str) -> dict[str, Any]:
    """A fault's parameters and their defaults, from its signature (the sandbox and the time it began are not the
    caller's to give)."""
    return {p.name: p.default for p in list(inspect.signature(FAULTS[name]).parameters.values())[2:]}


def usage(name: str) -> str:
    """The fault's parameters as a person writes them: ``version=1.5.0 error_rate=0.0``."""
    return " ".join(f"{key}={shlex.quote(default) if isinstance(default, str) else json.dumps(default)}"
                    for key, default in parameters(name).items()) or "(no parameters)"


def arguments(name: str, given: dict[str, Any]) -> dict[str, Any]:
    """``given`` checked against the fault's signature, each value of its parameter's type; text (from a shell) is
    read as JSON where the parameter is not text. A wrong name or type is a TypeError of one line, as a call with
    them would be, that names the fault's parameters."""
    hints = typing.get_type_hints(FAULTS[name], localns={"Target": object})
    known = parameters(name)
    checked = {}
    for key, value in given.items():
        if key not in known:
            raise TypeError(f"fault {name} has no parameter {key!r}; its parameters: {usage(name)}")
        kinds = typing.get_args(hints[key]) or (hints[key],)
        try:
            checked[key] = _of_kind(value, kinds)
        except ValueError:
            raise TypeError(f"fault {name}: {key}={value!r} is not {' or '.join(k.__name__ for k in kinds)}; "
                            f"its parameters: {usage(name)}") from None
    return checked


def _of_kind(value: Any, kinds: tuple[type, ...]) -> Any:
    if isinstance(value, str) and str not in kinds:
        value = json.loads(value)
    if isinstance(value, int) and not isinstance(value, bool) and float in kinds:
        value = float(value)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise ValueError(value)
    return value


def inject(sandbox: Target, name: str, params: dict[str, Any]) -> Active:
    if name not in FAULTS:
        raise KeyError(f"unknown fault {name!r} (known: {', '.join(sorted(FAULTS))})")
    params = arguments(name, params)
    since = datetime.now(UTC)
    if sandbox.api_pid is not None:
        # The API's metrics carry the time of their batch's first request: without a fresh batch here, requests
        # served under the fault would join one that started before ``since`` and outlive the fault's undo.
        sandbox.api_admin("/_sandbox/flush", {})
    return Active(name=name, params=params, since=since, undo=FAULTS[name](sandbox, since, **params))
