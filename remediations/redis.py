"""Redis procedures (runbook Redis Connection Issues) and Cache Scaling, which acts where it is allowed.

FLUSHALL is never automated: it turns every request into a database query.
"""

from __future__ import annotations

from dataclasses import dataclass

from entmoot_ops.errors import OpsError
from entmoot_ops.probes import measuring, redis
from entmoot_ops.remediation import Change, RemediationContext, procedure, remediation
from entmoot_ops import iam
from entmoot_ops.iam import needs

procedure("redis.check-auth-and-clients", title="Restore Redis connectivity", section="redis-connection-issues", steps=[
    "NOAUTH/WRONGPASS: verify the AUTH token in the secret store matches the replication group's",
    "too many clients: redis-cli INFO clients; CLIENT LIST to find the leaking service; restart it",
    "timeouts: aws elasticache describe-replication-groups (status, failover in progress?)",
])


@dataclass(frozen=True)
class Step:
    """What Cache Scaling does for the check that failed: memory and evictions want a larger node, a low hit
    rate wants more replicas to spread the reads (the runbook's increase-replica-count)."""

    group: str
    node_type: str
    replicas: int
    larger_node: str | None  # None: at the top of redis.node_types
    more_replicas: int | None  # None: at redis.max_replicas

    @property
    def grows_node(self) -> bool:
        return self.larger_node is not None


@needs("elasticache:DescribeReplicationGroups", resources=iam.REPLICATION_GROUP)
def _step(ctx: RemediationContext) -> tuple[Step, bool]:
    settings = ctx.env.redis
    if not settings.replication_group:
        raise OpsError("redis.replication_group is not configured: nothing to scale")
    with measuring("AWS ElastiCache"):
        group = ctx.readonly.aws("elasticache").describe_replication_groups(ReplicationGroupId=settings.replication_group)[
            "ReplicationGroups"][0]
    node_type, replicas = group.get("CacheNodeType", "?"), len(group.get("MemberClusters", ())) - 1
    ladder = settings.node_types
    larger = ladder[ladder.index(node_type) + 1] if node_type in ladder[:-1] else None
    more = replicas + 1 if replicas < settings.max_replicas else None
    return Step(settings.replication_group, node_type, replicas, larger, more), ctx.check_id == "redis.hit-rate"


def _plan(ctx: RemediationContext) -> list[str]:
    step, for_reads = _step(ctx)
    if for_reads:
        action = (f"aws elasticache increase-replica-count --replication-group-id {step.group} --new-replica-count "
                  f"{step.more_replicas} --apply-immediately  (from {step.replicas}; bound redis.max_replicas)"
                  if step.more_replicas else f"{step.group} has {step.replicas} replicas, the bound: check TTLs against "
                  "the runbook's Caching Strategy instead")
    else:
        action = (f"aws elasticache modify-replication-group --replication-group-id {step.group} --cache-node-type "
                  f"{step.larger_node} --apply-immediately  (from {step.node_type}, the next of redis.node_types)"
                  if step.grows_node else f"{step.group} is on {step.node_type}, the top of redis.node_types: shard, or "
                  "shorten TTLs")
    allowed = "" if ctx.env.redis.scaling_allowed else "  [a plan only here: acting needs redis.scaling_allowed = true]"
    return [action + allowed, "then re-check until the cache check passes",
            "never FLUSHALL to 'free memory': it turns every request into a database query"]


@needs("elasticache:IncreaseReplicaCount", "elasticache:ModifyReplicationGroup", mode="remediate", resources=iam.REPLICATION_GROUP)
def _act(ctx: RemediationContext) -> list[Change]:
    if not ctx.env.redis.scaling_allowed:
        raise OpsError(f"redis.scaling_allowed is not true for {ctx.env.name}: cache scaling stays a plan")
    step, for_reads = _step(ctx)
    client = ctx.writable.aws("elasticache")
    with measuring("AWS ElastiCache"):
        if for_reads and step.more_replicas:
            client.increase_replica_count(ReplicationGroupId=step.group, NewReplicaCount=step.more_replicas, ApplyImmediately=True)
            return [Change("elasticache:IncreaseReplicaCount", f"{step.replicas} replicas", f"{step.more_replicas} replicas")]
        if not for_reads and step.grows_node:
            client.modify_replication_group(ReplicationGroupId=step.group, CacheNodeType=step.larger_node, ApplyImmediately=True)
            return [Change("elasticache:ModifyReplicationGroup CacheNodeType", step.node_type, step.larger_node)]
    raise OpsError(f"{step.group} is at its bound ({step.node_type}, {step.replicas} replicas): not scaling further")


remediation("redis.scale-cache", title="Cache Scaling: a larger node, or one more replica", section="cache-scaling-redis",
            plan=_plan, act=_act)


NEVER_FLUSHALL = "never FLUSHALL (runbook solution 2): it drops every cached result and session at once"


def _maxmemory_target(ctx: RemediationContext) -> tuple[redis.RedisInfo, int]:
    settings = ctx.env.redis
    info = redis.info(ctx.readonly)
    wanted = int(info.used_memory * settings.maxmemory_headroom)
    return info, min(wanted, settings.maxmemory_max_bytes) if settings.maxmemory_max_bytes else wanted


def _maxmemory_plan(ctx: RemediationContext) -> list[str]:
    settings = ctx.env.redis
    info, target = _maxmemory_target(ctx)
    if settings.replication_group:
        return [f"ElastiCache refuses CONFIG SET: {settings.replication_group}'s maxmemory follows its node type and its "
                "parameter group (a plan for a person, never executed here)",
                f"a cache may evict: aws elasticache modify-cache-parameter-group --cache-parameter-group-name <its custom group> "
                f"--parameter-name-values ParameterName=maxmemory-policy,ParameterValue=allkeys-lru (now {info.maxmemory_policy})",
                "more room: ParameterName=reserved-memory-percent lower (default 25), or a larger node (remediation redis.scale-cache)",
                NEVER_FLUSHALL]
    allowed = "" if settings.config_set_allowed and settings.maxmemory_max_bytes else (
        "  [a plan only here: acting needs redis.config_set_allowed = true and redis.maxmemory_max_bytes]")
    return [f"CONFIG SET maxmemory {target} (from {info.maxmemory}; used {info.used_memory} x {settings.maxmemory_headroom:g}, "
            f"at most redis.maxmemory_max_bytes {settings.maxmemory_max_bytes or 'unset'}){allowed}",
            "persist it in redis.conf (CONFIG REWRITE, or the deployment's configuration): CONFIG SET is lost on restart",
            NEVER_FLUSHALL]


def _maxmemory_act(ctx: RemediationContext) -> list[Change]:
    settings = ctx.env.redis
    if settings.replication_group:
        raise OpsError("ElastiCache refuses CONFIG SET: the parameter-group change is a plan for a person")
    if not (settings.config_set_allowed and settings.maxmemory_max_bytes):
        raise OpsError(f"CONFIG SET maxmemory on {ctx.env.name} needs redis.config_set_allowed = true and redis.maxmemory_max_bytes")
    info, target = _maxmemory_target(ctx)
    if target <= info.maxmemory:
        raise OpsError(f"maxmemory {info.maxmemory} is already at the bound {target}: scale the node or shorten TTLs")
    with measuring("Redis"):
        ctx.writable.redis().config_set("maxmemory", target)
    return [Change("redis:CONFIG SET maxmemory", info.maxmemory, target)]


remediation("redis.maxmemory", title="Give a full Redis room (never FLUSHALL)", section="redis-connection-issues",
            plan=_maxmemory_plan, act=_maxmemory_act)


def _over_policy(ctx: RemediationContext) -> list[tuple[str, int]]:
    """(prefix, policy seconds) of the listed prefixes whose keys break the policy, from a fresh audit."""
    settings = ctx.env.redis
    audit = redis.ttl_audit(ctx.readonly, settings.ttl_policy, settings.ttl_sample_keys)
    return [(p.prefix, p.policy_seconds) for p in audit.prefixes if p.breaking and p.prefix and p.policy_seconds is not None]


def _ttl_plan(ctx: RemediationContext) -> list[str]:
    settings = ctx.env.redis
    allowed = "" if settings.ttl_fix_allowed else "  [a plan only here: acting needs redis.ttl_fix_allowed = true]"
    return [f"SCAN MATCH {prefix}* ; EXPIRE <key> {seconds} LT  (keys without a TTL, or with a longer one; at most "
            f"{settings.ttl_fix_max_keys} keys){allowed}" for prefix, seconds in _over_policy(ctx)] + [
            "then fix the code that writes them without the TTL (runbook Caching Strategy)", NEVER_FLUSHALL]


def _ttl_act(ctx: RemediationContext) -> list[Change]:
    settings = ctx.env.redis
    if not settings.ttl_fix_allowed:
        raise OpsError(f"EXPIRE on {ctx.env.name}'s keys needs redis.ttl_fix_allowed = true")
    client, changes, budget = ctx.writable.redis(), [], settings.ttl_fix_max_keys
    with measuring("Redis"):
        for prefix, seconds in _over_policy(ctx):
            fixed = 0
            for key in client.scan_iter(match=f"{prefix}*", count=1000):
                if budget == 0:
                    break
                # LT: only where the key has no TTL or a longer one; a shorter TTL is left alone.
                fixed += bool(client.expire(key, seconds, lt=True))
                budget -= 1
            changes.append(Change(f"redis:EXPIRE {prefix}* {seconds} s LT", "no TTL or above policy", f"{fixed} keys"))
    return changes


remediation("redis.set-ttl", title="Set the policy's TTL on keys that break it (listed prefixes, bounded; never FLUSHALL)",
            section="caching-strategy", plan=_ttl_plan, act=_ttl_act)
procedure("redis.persist-or-expire", title="Keys that live forever on a Redis that keeps nothing", section="caching-strategy", steps=[
    "a store of record (project:, results:): enable persistence (AOF, or ElastiCache snapshots / Multi-AZ) or move it to PostgreSQL",
    "a cache: give the keys a TTL (remediation redis.set-ttl) and map their prefix in redis.ttl_policy",
    "a restart of this Redis loses them today: FLUSHALL and failover drills would too",
])
