"""Redis procedures (runbook Redis Connection Issues, Cache Scaling). FLUSHALL is never automated."""

from entmoot_ops.remediation import procedure

procedure("redis.check-auth-and-clients", title="Restore Redis connectivity", section="redis-connection-issues", steps=[
    "NOAUTH/WRONGPASS: verify the AUTH token in the secret store matches the replication group's",
    "too many clients: redis-cli INFO clients; CLIENT LIST to find the leaking service; restart it",
    "timeouts: aws elasticache describe-replication-groups (status, failover in progress?)",
])
procedure("redis.scale-cache", title="Relieve cache pressure", section="cache-scaling-redis", steps=[
    "memory near maxmemory or evictions: scale the node type up (aws elasticache modify-replication-group "
    "--cache-node-type <larger> --apply-immediately) in a change window",
    "low hit rate: check TTLs against the runbook's Caching Strategy; a cold cache after a flush recovers by itself",
    "never FLUSHALL in production to 'free memory': it turns every request into a database query",
])
