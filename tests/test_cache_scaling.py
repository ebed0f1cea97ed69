"""Cache Scaling (runbook): a plan by default; where allowed, a larger node for memory pressure (the sandbox's
real Redis grows with the node type, so the re-check can pass), one more replica for a low hit rate."""

from __future__ import annotations

import json
import time

import boto3
import pytest

from conftest import settle
from entmoot_ops.sandbox import aws as sandbox_aws

ALLOW = {'replication_group = "entmoot-redis-sandbox"\n': 'replication_group = "entmoot-redis-sandbox"\nscaling_allowed = true\n'}


def _elasticache(sandbox):
    return boto3.client("elasticache", endpoint_url=sandbox.env["ENTMOOT_SANDBOX_AWS_ENDPOINT_URL"], region_name="us-east-1",
                        **sandbox_aws.CREDENTIALS)


@pytest.mark.e2e
def test_memory_pressure_is_fixed_by_a_larger_node_where_allowed(sandbox, run_checks, environments):
    elasticache = _elasticache(sandbox)
    with sandbox.fault("redis_memory_pressure"):
        try:
            run = run_checks("-m", "morning", "-k", "redis_memory", "--remediate", "--environments-dir", str(environments(replace=ALLOW)))
        finally:  # back to the seeded node type before the fault restores maxmemory (the agent halves it again)
            elasticache.modify_replication_group(ReplicationGroupId=sandbox_aws.REDIS_GROUP, CacheNodeType="cache.r6g.large",
                                                 ApplyImmediately=True)
            time.sleep(2.5)
    assert run.outcome("redis.memory") == "fixed", run.output[-3000:]
    acted = next(json.loads(line) for line in (run.reports / "audit.jsonl").read_text().splitlines() if '"acted"' in line)
    assert acted["changes"] == [{"action": "elasticache:ModifyReplicationGroup CacheNodeType", "before": "cache.r6g.large",
                                 "after": "cache.r6g.xlarge"}]


def test_cache_scaling_stays_a_plan_where_not_allowed(sandbox, run_checks):
    with sandbox.fault("redis_memory_pressure"):
        settle(sandbox)
        run = run_checks("-m", "morning", "-k", "redis_memory", "--remediate")
    assert run.outcome("redis.memory") == "fail"
    assert "action failed: redis.scaling_allowed is not true for sandbox: cache scaling stays a plan" in run.output
    assert "--cache-node-type cache.r6g.xlarge --apply-immediately" in run.output and "acting needs redis.scaling_allowed" in run.output
    described = _elasticache(sandbox).describe_replication_groups(ReplicationGroupId=sandbox_aws.REDIS_GROUP)["ReplicationGroups"][0]
    assert described["CacheNodeType"] == "cache.r6g.large"


def test_a_low_hit_rate_plans_one_more_replica(sandbox, run_checks):
    with sandbox.fault("redis_cold_cache"):
        settle(sandbox)
        run = run_checks("-m", "morning", "-k", "hit_rate")
    assert run.outcome("redis.hit-rate") == "fail"
    assert "aws elasticache increase-replica-count --replication-group-id entmoot-redis-sandbox --new-replica-count" in run.output
