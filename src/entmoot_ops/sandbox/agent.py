"""The agent: what AWS would do in the background, measured from the sandbox's real processes.

Every tick it writes the PostgreSQL heartbeat (so replica lag means something on an idle system), settles the
ECS service like the ECS scheduler would, and publishes AWS/RDS, AWS/ElastiCache and AWS/ECS metrics measured
from the real PostgreSQL, Redis and API processes, at high resolution (StorageResolution=1).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from dataclasses import dataclass, field
from datetime import datetime, timedelta, UTC
from typing import TYPE_CHECKING, Any

import psycopg

from entmoot_ops.sandbox import alb_metrics
from entmoot_ops.sandbox import aws as sandbox_aws

if TYPE_CHECKING:
    from entmoot_ops.sandbox.core import Core

GIB = 1024**3
HISTORY_SECONDS, HISTORY_STEP_SECONDS = 60, 5


@dataclass
class Agent:
    sandbox: Core
    interval: float = 2.0
    storage_fill_bytes: int = 0  # the low-storage fault's simulated bulk data
    cpu_fill_percent: float = 0.0  # the database CPU fault's simulated work, in percent of the seeded class
    stuck_rollout: bool = False
    leaked_memory_percent: float | None = None  # the memory-leak fault's MemoryUtilization, instead of the API's RSS
    rollout_moving: bool = False
    _last_redis: dict[str, int] = field(default_factory=dict)
    _node_type: str | None = None
    _last_database_cpu: tuple[float, float] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    errors: dict[str, str] = field(default_factory=dict)
    _history_seconds: int = 0  # how far back the readings of this tick also stand (the first tick's: the past)

    def start(self) -> None:
        # A real environment has a past: the first readings stand for the minute before as well, so that
        # CloudWatch's delay (moto_extensions.cloudwatch.visibility_delay) leaves no window empty once the sandbox is ready.
        self._history_seconds = HISTORY_SECONDS
        self.tick()
        self._history_seconds = 0
        threading.Thread(target=self._run, name="sandbox-agent", daemon=True).start()

    def _moments(self) -> list[datetime]:
        now = datetime.now(UTC)
        return [now - timedelta(seconds=back) for back in range(0, self._history_seconds + 1, HISTORY_STEP_SECONDS)]

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.tick()

    def tick(self) -> None:
        with self._lock:
            for name, step in (("ecs", self._settle), ("heartbeat", self._heartbeat), ("rds", self._rds),
                               ("cache-node-type", self._cache_node_type), ("redis", self._redis),
                               ("ecs-metrics", self._ecs_metrics)):
                try:
                    step()
                    self.errors.pop(name, None)
                except Exception as exc:  # noqa: BLE001 - a stopped component must not stop the agent
                    self.errors[name] = f"{type(exc).__name__}: {exc}"

    def rewind(self, namespace: str, since: datetime) -> int:
        """Forget what was published in ``namespace`` since a moment, between two ticks: a tick in progress may have
        read a fault's state before its undo, and would publish it after a rewind that did not wait for it."""
        with self._lock:
            return self.sandbox.aws.rewind_metrics(namespace, since)

    def restore_rds(self, since: datetime) -> None:
        """AWS/RDS since a moment as a healthy sandbox shows it: what a simulated fault published is replaced by the
        readings of now, one per history step. Forgotten and not replaced, a fault held longer than the checks'
        freshness window would leave them no period to judge (no data: an ERROR instead of a pass)."""
        with self._lock:
            self.sandbox.aws.rewind_metrics("AWS/RDS", since)
            self._history_seconds = int((datetime.now(UTC) - since).total_seconds())
            try:
                self._rds()
            finally:
                self._history_seconds = 0

    def _put(self, namespace: str, metrics: list[tuple[str, dict[str, str], float, str]]) -> None:
        data = [{"MetricName": name, "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()],
                 "Timestamp": at, "Value": value, "Unit": unit, "StorageResolution": 1}
                for at in self._moments() for name, dims, value, unit in metrics]
        self.sandbox.aws.publish(namespace, data)

    def _settle(self) -> None:
        self.rollout_moving = self.sandbox.aws.settle_service(
            stuck=self.stuck_rollout,
            on_new_deployment=lambda version: self.sandbox.api_admin("/_sandbox/version", {"version": version}))

    def _query(self, server: Any, sql: str, role: str = "postgres") -> Any:
        pg = self.sandbox.postgres
        with psycopg.connect(pg.local_dsn(role, server), connect_timeout=1, autocommit=True,
                             options="-c statement_timeout=1000") as conn:
            return conn.execute(sql).fetchone()

    def _heartbeat(self) -> None:
        self._query(self.sandbox.postgres.primary, "UPDATE sandbox_heartbeat SET beat_at = now() WHERE id = 1 RETURNING 1",
                    role="entmoot_app")

    def _rds(self) -> None:
        pg = self.sandbox.postgres
        used, connections = self._query(pg.primary, "SELECT sum(pg_database_size(datname))::bigint, "
                                        "(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') FROM pg_database")
        allocated = self.sandbox.aws.allocated_gib() * GIB
        primary = {"DBInstanceIdentifier": sandbox_aws.DB_INSTANCE}
        metrics = [("FreeStorageSpace", primary, float(max(allocated - used - self.storage_fill_bytes, 0)), "Bytes"),
                   ("DatabaseConnections", primary, float(connections), "Count"),
                   ("CPUUtilization", primary, self._database_cpu(), "Percent")]
        try:
            lag = self._query(pg.replica, "SELECT CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
                              "ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END::float8")[0]
            metrics.append(("ReplicaLag", {"DBInstanceIdentifier": sandbox_aws.DB_REPLICA}, float(lag), "Seconds"))
        finally:
            self._put("AWS/RDS", metrics)

    def _database_cpu(self) -> float:
        """CPU of the primary's processes since the last tick, on the seeded instance class, plus the fault's
        simulated work; a larger class (Vertical Scaling) has twice the CPU per step, so the percentage halves."""
        pid = self.sandbox.postgres.primary.pid
        seconds = 0.0
        for entry in os.listdir("/proc") if pid else ():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if entry == str(pid) or fields[1] == str(pid):  # the postmaster and its children (ppid)
                seconds += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        now = time.monotonic()
        previous, self._last_database_cpu = self._last_database_cpu, (now, seconds)
        measured = 0.0 if previous is None else 100 * max(seconds - previous[1], 0) / max(now - previous[0], 1e-3) / (os.cpu_count() or 1)
        classes = sandbox_aws.INSTANCE_CLASSES
        current = self.sandbox.aws.instance_class()
        steps = classes.index(current) - classes.index(sandbox_aws.SEEDED_CLASS) if current in classes else 0
        return min(100.0, (measured + self.cpu_fill_percent) / 2 ** steps)

    def _cache_node_type(self) -> None:
        """A node type change of the replication group (Cache Scaling) resizes the real Redis: each step of
        NODE_TYPES doubles (or halves) its maxmemory, as a larger node has twice the memory."""
        now = self.sandbox.aws.cache_node_type()
        before, self._node_type = self._node_type, now
        if before is None or before == now or not {before, now} <= set(sandbox_aws.NODE_TYPES):
            return
        steps = sandbox_aws.NODE_TYPES.index(now) - sandbox_aws.NODE_TYPES.index(before)
        client = self.sandbox.redis.client()
        client.config_set("maxmemory", int(int(client.config_get("maxmemory")["maxmemory"]) * 2 ** steps))

    def _redis(self) -> None:
        info = self.sandbox.redis.client().info()
        counters = {k: int(info[k]) for k in ("keyspace_hits", "keyspace_misses", "evicted_keys")}
        # A restarted Redis starts its counters at zero again: a drop means "since restart".
        delta = {k: v - self._last_redis.get(k, 0) if v >= self._last_redis.get(k, 0) else v for k, v in counters.items()}
        first = not self._last_redis
        self._last_redis = counters
        node = {"CacheClusterId": sandbox_aws.REDIS_NODE}
        maxmemory = int(info.get("maxmemory", 0)) or 1
        metrics = [("CurrConnections", node, float(info["connected_clients"]), "Count"),
                   ("DatabaseMemoryUsagePercentage", node, 100.0 * int(info["used_memory"]) / maxmemory, "Percent")]
        if not first:
            metrics += [("CacheHits", node, float(delta["keyspace_hits"]), "Count"),
                        ("CacheMisses", node, float(delta["keyspace_misses"]), "Count"),
                        ("Evictions", node, float(delta["evicted_keys"]), "Count")]
        self._put("AWS/ElastiCache", metrics)

    def _ecs_metrics(self) -> None:
        """The service's memory, from the API process. Its CPUUtilization is the API's own report of how much of
        the fleet's capacity the traffic used (sandbox.api_model.Fleet), so that it follows load and task count."""
        pid = self.sandbox.api_pid
        if pid is None:
            return
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        rss_bytes = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        dims = {"ClusterName": sandbox_aws.CLUSTER, "ServiceName": sandbox_aws.SERVICE}
        percent = self.leaked_memory_percent or 100.0 * rss_bytes / GIB
        self._put("AWS/ECS", [("MemoryUtilization", dims, percent, "Percent")])
        # Every running task is a healthy target of the ALB's target group (the API answers for all of them).
        aws = self.sandbox.aws
        healthy = [{"MetricName": "HealthyHostCount", "Timestamp": at, "Value": float(aws.running_count()), "Unit": "Count",
                    "StorageResolution": 1} for at in self._moments()]
        aws.publish("AWS/ApplicationELB", [d for datum in healthy for d in alb_metrics.datums(datum, aws.alb_dimension, aws.target_group_dimension)])
