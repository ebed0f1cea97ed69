"""Runbook Performance Optimization > Caching Strategy (-m weekly): the TTL guidelines, audited per key prefix from a
bounded SCAN (never KEYS; on the replica where one is configured), and keys without a TTL on a Redis that keeps
nothing on disk: data a restart loses."""

import pytest

from entmoot_ops.check import check, evidence, expect, expect_none
from entmoot_ops.probes import redis

SECTION = "caching-strategy"


def _audit(env) -> redis.TtlAudit:
    settings = env.config.redis
    return env.clients.remember("redis.ttl-audit", lambda: redis.ttl_audit(env.clients, settings.ttl_policy, settings.ttl_sample_keys))


def _sample(audit: redis.TtlAudit) -> str:
    return f"{audit.sampled} of {audit.keys} keys sampled on {audit.server}" + ("" if audit.complete else " (SCAN stopped at the bound)")


@pytest.mark.weekly
@check(id="redis.ttl-policy", title="Cached keys follow the TTL guidelines per prefix", section=SECTION, severity="medium",
       remediation="redis.set-ttl",
       depends=("redis",))
def test_ttl_policy(env):
    audit = _audit(env)
    evidence("TTLs per prefix", audit)
    expect_none(f"prefixes with keys without a TTL or above their policy ({_sample(audit)})",
                [p for p in audit.prefixes if p.breaking],
                lambda p: f"{p.prefix}* policy {p.policy_seconds} s: {p.without_ttl} without TTL, {p.above_policy} above, of "
                          f"{p.sampled} (e.g. {', '.join(p.examples)})")


@pytest.mark.weekly
@check(id="redis.unpersisted-keys", title="No key without a TTL on a Redis that persists nothing", section=SECTION, severity="high",
       remediation="redis.persist-or-expire",
       depends=("redis",))
def test_no_unpersisted_data(env):
    audit = _audit(env)
    evidence("persistence and keys without a TTL", {"persistence": audit.persistence, "without_ttl": audit.without_ttl,
                                                    "prefixes": audit.prefixes})
    if audit.persistence == "unknown":
        pytest.skip("this Redis refuses CONFIG (ElastiCache): check its snapshot retention instead "
                    "(aws elasticache describe-replication-groups ... SnapshotRetentionLimit)")
    held = audit.without_ttl if audit.persistence == "none" else 0
    expect(f"keys without a TTL that a restart loses (persistence {audit.persistence}; {_sample(audit)})", held, "==", 0)
