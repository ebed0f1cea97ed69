"""Runbook Morning Checklist [4], Redis Connection Issues and Cache Scaling (Redis)."""

import pytest

from entmoot_ops import charts
from entmoot_ops.check import chart, check, evidence, expect
from entmoot_ops.probes import cloudwatch, redis

SECTION = "cache-scaling-redis"


@pytest.mark.morning
@pytest.mark.incident
@check(id="redis.reachable", title="Redis answers with AUTH and has client headroom", section="redis-connection-issues",
       severity="critical", remediation="redis.check-auth-and-clients",
       depends=("redis",))
def test_redis_reachable(env):
    info = redis.info(env.clients)
    evidence("INFO", info)
    ratio = env.thresholds.connections_max_ratio
    expect("connected clients", info.connected_clients, "<", info.maxclients * ratio,
           against=f"{ratio:.0%} of maxclients {info.maxclients} =")


def _cache_traffic(env) -> redis.CacheTraffic:
    """Read once for the hit-rate and eviction checks of a run; a re-check after a remediation reads anew."""
    t = env.thresholds
    return env.clients.remember("redis.cache_traffic", lambda: redis.cache_traffic(
        env.clients, cloudwatch.Window.last(t.redis_window_minutes, t.metric_period_seconds), t.redis_recent_window_minutes))


@pytest.mark.morning
@check(id="redis.hit-rate", title="Cache hit rate above 70%, over the hour and over its last minutes", section=SECTION,
       severity="medium", remediation="redis.scale-cache",
       depends=("redis", "aws"))
def test_redis_hit_rate(env):
    traffic = _cache_traffic(env)
    evidence("CacheHits / CacheMisses", traffic)
    t = env.thresholds
    window = cloudwatch.Window.last(t.redis_window_minutes, t.metric_period_seconds)
    chart("Cache hit rate", lambda: charts.of_series("Cache hit rate per period", {"hit rate": redis.hit_rate_series(env.clients, window)},
                                                     unit="%", threshold=t.redis_hit_rate_min * 100, window=window, scale=100))
    minimum, recent_minutes = env.thresholds.redis_min_lookups, env.thresholds.redis_recent_window_minutes
    if traffic.whole.lookups < minimum:
        pytest.skip(f"too little traffic to judge: {traffic.whole.lookups:.0f} lookups < {minimum} in {traffic.whole.window}")
    for name, counts in (("over the window", traffic.whole), (f"in the last {recent_minutes:g} min", traffic.recent)):
        if counts.lookups >= minimum:  # too few recent lookups say nothing either way: the whole window still judged
            expect(f"hit rate {name} ({counts.hits:.0f} hits, {counts.misses:.0f} misses)", counts.hit_rate, ">",
                   env.thresholds.redis_hit_rate_min, unit="%", window=counts.window)


@pytest.mark.morning
@check(id="redis.evictions", title="No cache evictions in the window", section=SECTION, severity="medium",
       remediation="redis.scale-cache",
       depends=("redis", "aws"))
def test_redis_evictions(env):
    traffic = _cache_traffic(env)
    evidence("Evictions", traffic)
    expect("evicted keys", traffic.whole.evictions, "<=", env.thresholds.redis_evictions_max, window=traffic.whole.window)


@pytest.mark.morning
@check(id="redis.memory", title="Redis memory below 90% of maxmemory", section=SECTION, severity="high",
       remediation="redis.scale-cache",
       depends=("redis",))
def test_redis_memory(env):
    info = redis.info(env.clients)
    evidence("INFO memory", info)
    if not info.maxmemory:
        pytest.skip("maxmemory is 0 (no limit): memory pressure shows as host memory, not here")
    expect(f"used memory ({info.used_memory} of {info.maxmemory} bytes)", info.memory_ratio, "<",
           env.thresholds.redis_memory_max_ratio, unit="%", gauge="used memory")
