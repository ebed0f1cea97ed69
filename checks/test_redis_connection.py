"""Runbook Troubleshooting > Redis Connection Issues, as one incident bundle (-m incident -k redis).

"Redis connection timeout or NOAUTH errors" are several faults with several fixes: each gets its own one-line
verdict. The runbook's solutions 2 and 3 (FLUSHALL, CONFIG SET maxmemory) are not what this suite does: FLUSHALL
is never automated, and CONFIG SET is refused by ElastiCache (see remediation redis.maxmemory).
"""

import pytest

from entmoot_ops.check import check, evidence, expect
from entmoot_ops.probes import redis

SECTION = "redis-connection-issues"
VERDICTS = {
    "missing-password": "Redis demands a password and none was sent (NOAUTH): set redis.password to the AUTH token",
    "wrong-password": "Redis refused the password (WRONGPASS): the AUTH token changed; update the secret, restart the API",
    "unexpected-password": "a password was sent to a Redis that has none: remove redis.password or enable AUTH",
    "max-clients": "Redis refused a new client: maxclients reached; find the client that leaks connections",
    "timeout": "no answer within the read timeout: Redis is frozen, overloaded, failing over, or packets are dropped",
    "refused": "connection refused: Redis is down, restarting, or listens elsewhere",
    "unreachable": "Redis is unreachable: DNS, routing or a security group",
}


@pytest.mark.incident
@check(id="redis.connection", title="A new Redis connection authenticates and answers", section=SECTION, severity="critical",
       remediation="redis.check-auth-and-clients",
       depends=("redis",))
def test_redis_connection(env):
    connection = redis.connection(env.clients)
    evidence("new connection", connection)
    verdict = VERDICTS.get(connection.verdict, "answered")
    expect(f"new connection to {connection.endpoint}: {verdict} ({connection.detail})", connection.verdict, "==", "ok")


@pytest.mark.incident
@check(id="redis.oom", title="Redis is not full under maxmemory-policy noeviction", section=SECTION, severity="critical",
       remediation="redis.maxmemory",
       depends=("redis",))
def test_redis_not_out_of_memory(env):
    info = redis.info(env.clients)
    evidence("INFO memory", info)
    # Under an evicting policy a full Redis evicts (redis.evictions judges that); under noeviction it refuses writes,
    # from just below maxmemory on (a command's buffers count too).
    if info.maxmemory_policy != "noeviction" or not info.maxmemory:
        expect(f"writes refused when full (maxmemory-policy {info.maxmemory_policy}, maxmemory {info.maxmemory or 'unlimited'})",
               False, "==", False)
        return
    expect(f"OOM: used memory under maxmemory-policy noeviction ({info.used_memory} of {info.maxmemory} bytes; "
           f"{info.oom_errors} writes refused with OOM since start)", info.memory_ratio, "<", env.thresholds.redis_memory_max_ratio, unit="%")


@pytest.mark.incident
@check(id="redis.cluster-state", title="Redis cluster_state is ok (cluster mode)", section=SECTION, severity="critical",
       remediation="redis.check-auth-and-clients",
       depends=("redis",))
def test_redis_cluster_state(env):
    cluster = redis.cluster_state(env.clients)
    evidence("CLUSTER INFO", cluster)
    if not cluster.enabled:
        pytest.skip("cluster mode is disabled (INFO cluster_enabled:0): there is no cluster_state to judge")
    expect(f"cluster_state ({cluster.slots_assigned} of 16384 slots assigned, {cluster.known_nodes} nodes known)",
           cluster.state, "==", "ok")
