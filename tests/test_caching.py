"""Caching Strategy (-m weekly -k caching): the TTL policy per prefix from a bounded SCAN, keys a restart would lose,
and the bounded EXPIRE remediation (a plan unless allowed)."""

from __future__ import annotations

import json
import re

from entmoot_ops.probes.redis import mask_key

ALLOW = {'replication_group = "entmoot-redis-sandbox"\n': 'replication_group = "entmoot-redis-sandbox"\nttl_fix_allowed = true\n'}


def test_key_names_are_masked_where_they_carry_ids():
    assert mask_key("project:123") == "project:<id>"
    assert mask_key("constraints:1.0:2.0:50.0") == "constraints:<id>:<id>:<id>"
    assert mask_key("session:9f1c2b3a-77aa-4d1e-9c4b-1234567890ab") == "session:<id>"
    assert mask_key("prefs:theme") == "prefs:theme"


def test_a_healthy_sandbox_passes(sandbox, run_checks):
    run = run_checks("-m", "weekly", "-k", "caching")
    assert run.by_outcome() == {"pass": {"redis.ttl-policy", "redis.unpersisted-keys"}}, run.output[-3000:]


def test_keys_without_ttl_or_above_policy_are_named_and_lost_on_restart(sandbox, run_checks, environments):
    with sandbox.fault("redis_keys_without_ttl"):
        run = run_checks("-m", "weekly", "-k", "caching")
        bounded = run_checks("-m", "weekly", "--check", "redis.ttl-policy", "--environments-dir",
                             str(environments(replace={"[redis]\n": "[redis]\nttl_sample_keys = 100\n"})))
    policy = run.result("redis.ttl-policy").message
    assert re.search(r"constraints:\* policy 86400 s: 200 without TTL, 0 above, of \d+ \(e\.g\. constraints:sandbox:<id>", policy), \
        run.output[-3000:]
    assert re.search(r"project:\* policy 300 s: 0 without TTL, 200 above, of \d+ \(e\.g\. project:<id>", policy)
    assert "KEYS" not in run.output.replace("KEYS)", "")  # SCAN, never KEYS
    lost = run.result("redis.unpersisted-keys").message
    assert re.search(r"keys without a TTL that a restart loses \(persistence none; \d+ of \d+ keys sampled on 127\.0\.0\.1:\d+\): "
                     r"measured 200, threshold == 0", lost), lost
    assert "SCAN stopped at the bound" in bounded.result("redis.ttl-policy").message, bounded.output[-2000:]


def test_the_ttl_is_set_only_where_allowed_and_bounded(sandbox, run_checks, environments):
    with sandbox.fault("redis_keys_without_ttl"):
        planned = run_checks("-m", "weekly", "--check", "redis.ttl-policy", "--remediate")
        fixed = run_checks("-m", "weekly", "--check", "redis.ttl-policy", "--remediate", "--environments-dir",
                           str(environments(replace=ALLOW)))
        after = run_checks("-m", "weekly", "--check", "redis.unpersisted-keys")
    assert "(action failed: EXPIRE on sandbox's keys needs redis.ttl_fix_allowed = true)" in planned.output, planned.output[-3000:]
    assert "SCAN MATCH constraints:* ; EXPIRE <key> 86400 LT" in planned.output and "never FLUSHALL" in planned.output
    assert fixed.outcome("redis.ttl-policy") == "fixed", fixed.output[-3000:]
    acted = [json.loads(line) for line in (fixed.reports / "audit.jsonl").read_text().splitlines() if '"acted"' in line][0]
    assert {c["action"]: c["after"] for c in acted["changes"]} == {"redis:EXPIRE constraints:* 86400 s LT": "200 keys",
                                                                   "redis:EXPIRE project:* 300 s LT": "200 keys"}
    assert after.outcome("redis.unpersisted-keys") == "pass", after.output[-3000:]
