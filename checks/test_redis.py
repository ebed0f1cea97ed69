"""Runbook Morning Checklist [4], Redis Connection Issues and Cache Scaling (Redis)."""

import pytest

from entmoot_ops.check import check, evidence, expect
from entmoot_ops.probes import redis

SECTION = "cache-scaling-redis"


@pytest.mark.morning
@check(id="redis.reachable", title="Redis answers with AUTH and has client headroom", section="redis-connection-issues",
       severity="critical", remediation="redis.check-auth-and-clients")
def test_redis_reachable(env):
    info = redis.info(env.clients)
    evidence("INFO", info)
    ratio = env.thresholds.connections_max_ratio
    expect("connected clients", info.connected_clients, "<", info.maxclients * ratio,
           against=f"{ratio:.0%} of maxclients {info.maxclients} =")


@pytest.mark.morning
@check(id="redis.hit-rate", title="Cache hit rate above 70%", section=SECTION, severity="medium",
       remediation="redis.scale-cache")
def test_redis_hit_rate(env):
    traffic = redis.cache_traffic(env.clients)
    evidence("CacheHits / CacheMisses", traffic)
    minimum = env.thresholds.redis_min_lookups
    if traffic.lookups < minimum:
        pytest.skip(f"too little traffic to judge: {traffic.lookups:.0f} lookups < {minimum} in {traffic.window}")
    expect(f"hit rate ({traffic.hits:.0f} hits, {traffic.misses:.0f} misses)", traffic.hit_rate, ">",
           env.thresholds.redis_hit_rate_min, unit="%", window=traffic.window)


@pytest.mark.morning
@check(id="redis.evictions", title="No cache evictions in the window", section=SECTION, severity="medium",
       remediation="redis.scale-cache")
def test_redis_evictions(env):
    traffic = redis.cache_traffic(env.clients)
    evidence("Evictions", traffic)
    expect("evicted keys", traffic.evictions, "<=", env.thresholds.redis_evictions_max, window=traffic.window)


@pytest.mark.morning
@check(id="redis.memory", title="Redis memory below 90% of maxmemory", section=SECTION, severity="high",
       remediation="redis.scale-cache")
def test_redis_memory(env):
    info = redis.info(env.clients)
    evidence("INFO memory", info)
    if not info.maxmemory:
        pytest.skip("maxmemory is 0 (no limit): memory pressure shows as host memory, not here")
    expect(f"used memory ({info.used_memory} of {info.maxmemory} bytes)", info.memory_ratio, "<",
           env.thresholds.redis_memory_max_ratio, unit="%")
