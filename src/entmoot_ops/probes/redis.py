"""Redis: what INFO says now, and ElastiCache's CloudWatch counters over a window."""

from __future__ import annotations

from dataclasses import dataclass

from entmoot_ops.clients import Clients
from entmoot_ops.errors import DependencyError
from entmoot_ops.probes import cloudwatch, measuring


@dataclass(frozen=True)
class RedisInfo:
    version: str
    connected_clients: int
    maxclients: int
    used_memory: int
    maxmemory: int  # 0 means no limit
    maxmemory_policy: str
    keyspace_hits: int
    keyspace_misses: int
    evicted_keys: int

    @property
    def memory_ratio(self) -> float | None:
        return self.used_memory / self.maxmemory if self.maxmemory else None


def info(clients: Clients) -> RedisInfo:
    """PING (with AUTH when configured) and INFO; a NOAUTH or WRONGPASS answer is an error, not a pass."""
    client = clients.redis()
    with measuring("Redis"):
        client.ping()
        raw = client.info()
    return RedisInfo(
        version=str(raw.get("redis_version", "")),
        connected_clients=int(raw["connected_clients"]),
        maxclients=int(raw.get("maxclients", 10000)),  # INFO has it since Redis 7; 10000 is Redis's default
        used_memory=int(raw["used_memory"]),
        maxmemory=int(raw.get("maxmemory", 0)),
        maxmemory_policy=str(raw.get("maxmemory_policy", "")),
        keyspace_hits=int(raw["keyspace_hits"]),
        keyspace_misses=int(raw["keyspace_misses"]),
        evicted_keys=int(raw["evicted_keys"]),
    )


@dataclass(frozen=True)
class CacheTraffic:
    nodes: tuple[str, ...]
    hits: float
    misses: float
    evictions: float
    window: str

    @property
    def lookups(self) -> float:
        return self.hits + self.misses

    @property
    def hit_rate(self) -> float | None:
        return self.hits / self.lookups if self.lookups else None


def cache_nodes(clients: Clients) -> tuple[str, ...]:
    group = clients.env.redis.replication_group
    if not group:
        raise DependencyError("AWS ElastiCache", "redis.replication_group is not configured")
    with measuring("AWS ElastiCache"):
        answer = clients.aws("elasticache").describe_replication_groups(ReplicationGroupId=group)
    members = tuple(answer["ReplicationGroups"][0].get("MemberClusters", ()))
    if not members:
        raise DependencyError("AWS ElastiCache", f"replication group {group} lists no member clusters")
    return members


def cache_traffic(clients: Clients) -> CacheTraffic:
    """Hits, misses and evictions summed over every node of the replication group for the window."""
    thresholds = clients.env.thresholds
    window = cloudwatch.Window.last(thresholds.redis_window_minutes, thresholds.metric_period_seconds)
    nodes = cache_nodes(clients)
    totals = {}
    for metric in ("CacheHits", "CacheMisses", "Evictions"):
        totals[metric] = sum(
            cloudwatch.series(clients, "AWS/ElastiCache", metric, {"CacheClusterId": node}, "Sum", window).total or 0.0
            for node in nodes
        )
    return CacheTraffic(nodes=nodes, hits=totals["CacheHits"], misses=totals["CacheMisses"],
                        evictions=totals["Evictions"], window=window.describe())
