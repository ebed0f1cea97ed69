"""Faults of Redis: flushed, under memory pressure, its password changed, out of memory, keys without a TTL, clients,
a cold cache, no requirepass."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

import contextlib

import redis


if TYPE_CHECKING:
    from entmoot_ops.sandbox.core import Target


def redis_flushed(sandbox: Target, since: datetime) -> Callable[[], None]:
    """The cache emptied (FLUSHALL): nothing to undo, the application fills it again."""
    sandbox.redis.client().flushall()
    return lambda: None


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


def redis_requirepass_missing(sandbox: Target, since: datetime) -> Callable[[], None]:
    """redis.conf has lost its requirepass: the next restart brings Redis up without a password."""
    sandbox.redis.write_config(requirepass=False)
    return sandbox.redis.write_config
