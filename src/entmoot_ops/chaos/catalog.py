"""The experiments the suite offers. Each names its method, the checks that must detect the fault, what the fault
breaks (so the checks that depend on it may turn red too), and the runbook section it exercises.

Sandbox experiments act on the sandbox's servers; AWS experiments use AWS's own fault APIs and run on the
sandbox too, whose AWS serves those calls and carries the fault to its real servers.
"""

from __future__ import annotations

from entmoot_ops.chaos.experiment import Experiment, Step

# Without its cache or its database the API fails requests: what it serves turning red is the fault's reach.
_REDIS = ("redis", "api", "traffic")
_PRIMARY = ("primary", "replica", "api", "traffic")
_SERVED = ("api", "traffic")

EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (
    Experiment("kill-redis", "Redis killed: the cache and API health checks see it", "redis-connection-issues", "sandbox",
               (Step("kill", {"component": "redis"}),), detectors=("redis.reachable", "api.health"), breaks=_REDIS),
    Experiment("freeze-redis", "Redis frozen (SIGSTOP): seen within the timeouts, not after them", "redis-connection-issues",
               "sandbox", (Step("freeze", {"component": "redis"}),), detectors=("redis.reachable", "api.health"),
               breaks=_REDIS),
    Experiment("kill-primary", "PostgreSQL primary killed: connections, replication and API health see it",
               "database-connection-pool-exhaustion", "sandbox", (Step("kill", {"component": "primary"}),),
               detectors=("postgres.connections", "api.health"), breaks=_PRIMARY),
    Experiment("freeze-primary", "PostgreSQL primary frozen (SIGSTOP)", "database-connection-pool-exhaustion", "sandbox",
               (Step("freeze", {"component": "primary"}),), detectors=("postgres.connections", "api.health"),
               breaks=_PRIMARY),
    Experiment("kill-replica", "Replica killed: replication checks see it, the API does not suffer",
               "alert-database-replication-lag-60s", "sandbox", (Step("kill", {"component": "replica"}),),
               detectors=("replication.streaming",), breaks=("replica",), also=("replication.slots-active",)),
    Experiment("freeze-replica", "Replica frozen (SIGSTOP)", "alert-database-replication-lag-60s", "sandbox",
               (Step("freeze", {"component": "replica"}),), detectors=("replication.lag",),
               breaks=("replica",), also=("replication.streaming", "replication.slots-active")),
    Experiment("kill-api", "API killed: health and auth checks see it", "high-api-error-rate", "sandbox",
               (Step("kill", {"component": "api"}),), detectors=("api.health",), breaks=_SERVED),
    Experiment("freeze-api", "API frozen (SIGSTOP)", "api-response-time-high", "sandbox", (Step("freeze", {"component": "api"}),),
               detectors=("api.health",), breaks=_SERVED),
    Experiment("slow-redis", "Redis answers the API 1.5 s late: its /health says so", "redis-connection-issues", "sandbox",
               (Step("slow-dependency", {"dependency": "redis", "ms": 1500}),), detectors=("api.health",), breaks=_SERVED,
               also=("redis.hit-rate", "redis.evictions")),
    Experiment("blackhole-primary", "Nothing passes between the API and the primary: the API, not the database, is hurt",
               "database-connection-pool-exhaustion", "sandbox", (Step("blackhole-dependency", {"dependency": "primary"}),),
               detectors=("api.health",), breaks=_SERVED),
    Experiment("pause-replica-replay", "WAL replay paused on the replica", "alert-database-replication-lag-60s", "sandbox",
               (Step("pause-replica-replay"),), detectors=("replication.lag",)),
    Experiment("fill-rds-storage", "RDS storage filled to 5% free", "alert-disk-space-low-10", "sandbox",
               (Step("fill-rds-storage", {"free_ratio": 0.05}),), detectors=("rds.free-storage",)),
    Experiment("redis-memory-pressure", "Redis at its maxmemory: evictions", "cache-scaling-redis", "sandbox",
               (Step("redis-memory-pressure"),), detectors=("redis.evictions",), breaks=("redis",)),
    Experiment("flush-cache", "The cache emptied: the service absorbs it, nothing turns red", "cache-scaling-redis", "sandbox",
               (Step("flush-cache"),)),
    Experiment("lose-api-tasks", "A third of the API's tasks stopped (ECS StopTask): the service check sees the gap until "
               "ECS replaces them", "scaling-api-servers", "aws", (Step("ecs-stop-tasks", {"fraction": 0.34}),),
               detectors=("ecs.service-steady",)),
    Experiment("redis-failover", "ElastiCache failover (TestFailover): clients reconnect, nothing stays red",
               "redis-connection-issues", "aws", (Step("elasticache-failover"),), breaks=_REDIS),
    Experiment("fis-stop-api-tasks", "An AWS FIS experiment template stops API tasks; the suite judges around it",
               "scaling-api-servers", "aws", (Step("fis-experiment"),), detectors=("ecs.service-steady",)),
    Experiment("rds-reboot-failover", "RDS rebooted with failover: the database checks see it, then it comes back",
               "database-connection-pool-exhaustion", "aws", (Step("rds-reboot", {"failover": True}),),
               detectors=("rds.available",), breaks=_PRIMARY),
)}
