"""Redis: what INFO says now, and ElastiCache's CloudWatch counters over a window."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis as redis_library

from entmoot_ops.breaker import fresh
from entmoot_ops.clients import Clients
from entmoot_ops.errors import DependencyError
from entmoot_ops.probes import cloudwatch, measuring
from entmoot_ops.redaction import excerpt, redact
from entmoot_ops import iam
from entmoot_ops.iam import needs


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
    oom_errors: int  # writes refused with OOM since the server started (INFO errorstats)

    @property
    def memory_ratio(self) -> float | None:
        return self.used_memory / self.maxmemory if self.maxmemory else None


def info(clients: Clients) -> RedisInfo:
    """PING (with AUTH when configured) and INFO; a NOAUTH or WRONGPASS answer is an error, not a pass."""
    client = clients.redis()
    with measuring("Redis"):
        client.ping()
        raw = client.info()
        errors = client.info("errorstats")
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
        oom_errors=int(errors.get("errorstat_OOM", {}).get("count", 0)),
    )


@dataclass(frozen=True)
class CacheCounts:
    hits: float
    misses: float
    evictions: float | None  # None: no Evictions datapoint at all, which ElastiCache publishes every minute, even 0
    window: str

    @property
    def lookups(self) -> float:
        return self.hits + self.misses

    @property
    def hit_rate(self) -> float | None:
        return self.hits / self.lookups if self.lookups else None


@dataclass(frozen=True)
class CacheTraffic:
    nodes: tuple[str, ...]
    whole: CacheCounts  # the configured window
    recent: CacheCounts  # its last minutes, where a collapse shows before an hour's average hides it


@needs("elasticache:DescribeReplicationGroups", resources=iam.REPLICATION_GROUP)
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


METRICS = ("CacheHits", "CacheMisses", "Evictions")


def cache_traffic(clients: Clients, window: cloudwatch.Window, recent_minutes: float) -> CacheTraffic:
    """Hits, misses and evictions summed over every node of the replication group, over ``window`` and over
    its last ``recent_minutes``: one GetMetricData call for all of them."""
    nodes = cache_nodes(clients)
    asked = [(metric, {"CacheClusterId": node}) for node in nodes for metric in METRICS]
    found = cloudwatch.many_series(clients, "AWS/ElastiCache", asked, "Sum", window)
    recent = cloudwatch.Window(max(window.start, window.end - timedelta(minutes=recent_minutes)), window.end, window.period_seconds)

    def counts(since: cloudwatch.Window) -> CacheCounts:
        sums = dict.fromkeys(METRICS, 0.0)
        reported = set()
        for (metric, _), series in zip(asked, found, strict=True):
            points = [value for moment, value in series.points if moment >= since.start]
            sums[metric] += sum(points)
            reported.update([metric] if points else [])
        return CacheCounts(hits=sums["CacheHits"], misses=sums["CacheMisses"],
                           evictions=sums["Evictions"] if "Evictions" in reported else None, window=since.describe())

    return CacheTraffic(nodes=nodes, whole=counts(window), recent=counts(recent))


def hit_rate_series(clients: Clients, window: cloudwatch.Window) -> cloudwatch.Series:
    """The group's hit rate per period (hits / lookups, every node summed), as a ratio."""
    nodes = cache_nodes(clients)
    found = cloudwatch.many_series(clients, "AWS/ElastiCache", [(metric, {"CacheClusterId": node}) for node in nodes
                                                                 for metric in ("CacheHits", "CacheMisses")], "Sum", window)
    hits: dict[datetime, float] = {}
    lookups: dict[datetime, float] = {}
    for index, series in enumerate(found):
        for moment, value in series.points:
            lookups[moment] = lookups.get(moment, 0.0) + value
            if index % 2 == 0:
                hits[moment] = hits.get(moment, 0.0) + value
    points = tuple((moment, hits.get(moment, 0.0) / total) for moment, total in sorted(lookups.items()) if total)
    return cloudwatch.Series("AWS/ElastiCache", "hit rate", "Sum", points)


@dataclass(frozen=True)
class Connection:
    """How a new connection with the configured credentials fares: the runbook's "timeout or NOAUTH", told apart."""

    endpoint: str
    verdict: str  # ok, missing-password, wrong-password, unexpected-password, max-clients, timeout, refused, unreachable
    detail: str


def _connection_verdict(error: BaseException, password_sent: bool) -> str:
    # redis-py maps the server's NOAUTH and WRONGPASS to AuthenticationError and drops the code from the text (and
    # NOAUTH's text depends on the command: PING, HELLO): whether a password was sent tells them apart.
    text = str(error)
    if isinstance(error, redis_library.AuthenticationError):
        return "wrong-password" if password_sent else "missing-password"
    for needle, verdict in (("without any password configured", "unexpected-password"), ("max number of clients", "max-clients")):
        if needle in text:
            return verdict
    if isinstance(error, redis_library.TimeoutError):
        return "timeout"
    return "refused" if "refused" in text.lower() else "unreachable"


def connection(clients: Clients) -> Connection:
    """A PING on a new connection, measured now (an open circuit is tried again): the error is the reading."""
    shared = clients.redis()
    # A connection of its own: a pooled one authenticated before a password change proves nothing, and the pool's
    # are in use by the checks measuring at once.
    pool = shared.connection_pool
    client = type(shared)(connection_pool=redis_library.ConnectionPool(connection_class=pool.connection_class, **pool.connection_kwargs),
                          retry=shared.get_retry())
    client.endpoint = shared.endpoint
    try:
        with fresh():
            client.ping()
    except redis_library.RedisError as exc:
        first_line = excerpt((str(exc).splitlines() or [type(exc).__name__])[0], 200)
        return Connection(client.endpoint, _connection_verdict(exc, clients.env.redis.password is not None), first_line)
    finally:
        client.close()
    return Connection(client.endpoint, "ok", "PONG")


@dataclass(frozen=True)
class ClusterState:
    enabled: bool
    state: str | None  # CLUSTER INFO cluster_state: ok or fail
    slots_assigned: int | None
    known_nodes: int | None


def cluster_state(clients: Clients) -> ClusterState:
    client = clients.redis()
    with measuring("Redis"):
        if not int(client.info("cluster").get("cluster_enabled", 0)):
            return ClusterState(False, None, None, None)
        fields = client.execute_command("CLUSTER INFO")  # redis-py parses it into a dict
    return ClusterState(True, fields.get("cluster_state"), int(fields.get("cluster_slots_assigned", 0)), int(fields.get("cluster_known_nodes", 0)))


# Ids in key names (numbers, UUIDs, hashes) are masked in what a reading shows: they can name a customer's data.
_KEY_ID = re.compile(r"(?<=:)(?:[0-9][0-9.]*|[0-9a-fA-F-]{8,})(?=:|$)")
SCAN_BATCH = 1000


def mask_key(key: str) -> str:
    """A key's name as a reading shows it: ids masked, and what the redaction rules recognise (an e-mail address
    in ``session:alice@example.com``) redacted."""
    return redact(_KEY_ID.sub("<id>", key))


@dataclass(frozen=True)
class PrefixTtl:
    prefix: str  # "" for keys under no prefix of the policy
    policy_seconds: int | None  # None: keys may live without a TTL
    sampled: int
    without_ttl: int
    above_policy: int
    examples: tuple[str, ...]  # masked names of keys that break the policy

    @property
    def breaking(self) -> int:
        return self.above_policy + (self.without_ttl if self.policy_seconds is not None else 0)


@dataclass(frozen=True)
class TtlAudit:
    server: str
    sampled: int
    keys: int  # DBSIZE: the sample's share of the whole
    complete: bool  # the scan reached the end of the keyspace
    prefixes: tuple[PrefixTtl, ...]
    persistence: str  # "aof", "rdb", "aof+rdb", "none", or "unknown" where CONFIG is refused (ElastiCache)

    @property
    def without_ttl(self) -> int:
        return sum(p.without_ttl for p in self.prefixes)


def _persistence(client: redis_library.Redis) -> str:
    aof = int(client.info("persistence").get("aof_enabled", 0)) == 1
    try:
        rdb = bool(client.config_get("save").get("save"))
    except redis_library.ResponseError:  # ElastiCache refuses CONFIG: its snapshots are not visible from here
        return "aof" if aof else "unknown"
    return "+".join(name for name, on in (("aof", aof), ("rdb", rdb)) if on) or "none"


def ttl_audit(clients: Clients, policy: dict[str, int | None], sample_keys: int) -> TtlAudit:
    """SCAN (never KEYS) at most ``sample_keys`` keys, on the replica where one is configured, and compare each key's
    TTL with the longest its prefix may have. The cost is bounded by the sample, not by the keyspace."""
    client = clients.redis(replica=True)
    prefixes = sorted(policy, key=len, reverse=True)  # the longest matching prefix decides
    counts: dict[str, list[int]] = {p: [0, 0, 0] for p in [*policy, ""]}
    examples: dict[str, list[str]] = {p: [] for p in counts}
    cursor, sampled = 0, 0
    with measuring("Redis"):
        keys_total = int(client.dbsize())
        while True:
            cursor, keys = client.scan(cursor=cursor, count=min(SCAN_BATCH, sample_keys - sampled))
            with client.pipeline(transaction=False) as pipe:  # TTL only: a read, one round trip per batch
                for key in keys:
                    pipe.ttl(key)
                ttls = pipe.execute()
            for key, ttl in zip(keys, ttls, strict=True):
                prefix = next((p for p in prefixes if key.startswith(p)), "")
                limit = policy.get(prefix)
                counts[prefix][0] += 1
                broken = False
                if ttl == -1:
                    counts[prefix][1] += 1
                    broken = limit is not None or prefix == ""
                elif limit is not None and ttl > limit:
                    counts[prefix][2] += 1
                    broken = True
                if broken and len(examples[prefix]) < 3:
                    examples[prefix].append(mask_key(key))
            sampled += len(keys)
            if cursor == 0 or sampled >= sample_keys:
                break
        persistence = _persistence(client)
    return TtlAudit(server=client.endpoint, sampled=sampled, keys=keys_total, complete=cursor == 0,
                    prefixes=tuple(PrefixTtl(p, policy.get(p), *counts[p], tuple(examples[p])) for p in counts if counts[p][0]),
                    persistence=persistence)
