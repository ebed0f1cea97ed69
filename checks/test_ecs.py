"""Runbook Quick Reference (service status) and Evening Checklist [2]: the ECS service is steady."""

import pytest

from entmoot_ops.check import check, evidence, expect
from entmoot_ops.probes import ecs


@pytest.mark.morning
@pytest.mark.evening
@pytest.mark.handoff
@check(id="ecs.service-steady", title="ECS service steady on one completed deployment", section="quick-reference",
       severity="critical", remediation="ecs.stabilise-service",
       depends=("aws",))
def test_ecs_service_steady(env):
    state = ecs.service_state(env.clients)
    evidence("ecs:DescribeServices", state)
    expect("running tasks", state.running, "==", state.desired, against="desired")
    expect("running tasks of the PRIMARY deployment", state.primary[0].running if state.primary else 0, "==", state.desired,
           against="desired")
    expect("pending tasks", state.pending, "==", 0)
    expect("PRIMARY deployments", len(state.primary), "==", 1)
    expect("deployments in flight", len(state.deployments), "==", 1)
    expect("PRIMARY rollout state", state.primary[0].rollout_state or "(none)", "==", "COMPLETED")
    expect("failed tasks of the PRIMARY deployment", state.primary[0].failed_tasks, "==", 0)
