"""Runbook Morning Checklist [1] and Quick Reference: API health."""

import pytest

from entmoot_ops.check import check, evidence, expect
from entmoot_ops.probes import api


@pytest.mark.morning
@pytest.mark.handoff
@check(id="api.health", title="API reports healthy", section="morning-checklist-start-of-business-day",
       severity="critical", remediation="api.investigate-health")
def test_api_health(env):
    health = api.health(env.clients)
    evidence("GET /health", health)
    expect("HTTP status of /health", health.http_status, "==", 200)
    # A degraded body with HTTP 200 is the case the runbook's `curl | jq` lets through.
    expect("health status", health.status or "(missing)", "in", env.config.api.healthy_statuses)
    expect("version in /health", health.version or "(missing)", "!=", "(missing)")
