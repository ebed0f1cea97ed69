"""Faults of the API and its traffic: errors, latency, health, authentication, capacity, a deployment, certificates."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING



from entmoot_ops.sandbox import aws as sandbox_aws
from entmoot_ops.sandbox.api_model import POOL_ERROR
from entmoot_ops.sandbox.processes import wait_until

if TYPE_CHECKING:
    from entmoot_ops.sandbox.core import Target

from entmoot_ops.sandbox.faults.common import (api_faults, forgetting_traffic)

def api_errors(sandbox: Target, since: datetime, rate: float = 0.5, message: str = POOL_ERROR) -> Callable[[], None]:
    """A share of the API's requests fail, logging ``message`` (a pool timeout by default; an external timeout...)."""
    return forgetting_traffic(sandbox, since, api_faults(sandbox, error_rate=rate, error_message=message))


def slow_endpoints(sandbox: Target, since: datetime, paths: dict | None = None) -> Callable[[], None]:
    """Requests to some paths take longer ({prefix: extra ms}): slow endpoints in the logs and the ALB's p95."""
    return forgetting_traffic(sandbox, since, api_faults(sandbox, slow_paths=paths or {"/api/buildings": 1500}))


def memory_leak(sandbox: Target, since: datetime, percent: float = 96) -> Callable[[], None]:
    """The tasks' MemoryUtilization climbs to ``percent``, as a leak before the OOM kill."""
    sandbox.agent.leaked_memory_percent = percent

    def undo() -> None:
        sandbox.agent.leaked_memory_percent = None
        sandbox.agent.rewind("AWS/ECS", since)
    return undo


def api_latency(sandbox: Target, since: datetime, ms: float = 800) -> Callable[[], None]:
    """Every API request takes ``ms`` longer: the ALB's response time and p95 rise."""
    return forgetting_traffic(sandbox, since, api_faults(sandbox, latency_ms=ms))


def api_degraded(sandbox: Target, since: datetime, detail: str = "") -> Callable[[], None]:
    """The API's health endpoint says degraded (with HTTP 200, as many services do: only the body tells); with a
    ``detail``, a component says "error: DETAIL" (services quote their errors there, connection strings and all)."""
    return api_faults(sandbox, degraded=True, degraded_detail=detail)


def api_auth_disabled(sandbox: Target, since: datetime) -> Callable[[], None]:
    """The API serves /api/ without asking for a credential, as a release shipped with authentication off."""
    return api_faults(sandbox, auth_disabled=True)


def api_storage_fallback(sandbox: Target, since: datetime) -> Callable[[], None]:
    """The API fell back to in-memory storage (started while Redis was away) and still says healthy."""
    return api_faults(sandbox, storage_fallback=True)


def api_task_rate(sandbox: Target, since: datetime, rate: float = 1000.0) -> Callable[[], None]:
    """Another capacity per ECS task (requests a second): a benchmark lifts the ceiling to measure the load side; a
    test lowers it to saturate the fleet, whose slow requests and busy CPU are forgotten with the fault."""
    return forgetting_traffic(sandbox, since, api_faults(sandbox, task_rate=rate))


def clock_skew(sandbox: Target, since: datetime, seconds: float = 5) -> Callable[[], None]:
    """The API's clock (its Date header, the on-call host's reference) is ``seconds`` off."""
    return api_faults(sandbox, clock_skew_seconds=seconds)


def _wait_for_version(sandbox: Target, version: str) -> None:
    wait_until(lambda: sandbox.api_health()["version"] == version and not sandbox.agent.rollout_moving,
               what=f"rollout of {version}", timeout=30)


def deploy(sandbox: Target, since: datetime, version: str = "1.5.0", error_rate: float = 0.0, latency_ms: float = 0.0,
           wait: bool = True) -> Callable[[], None]:
    """A release as the user's pipeline makes it (new image tag, new revision, service updated); the sandbox
    rolls it out over a few seconds. ``error_rate``/``latency_ms`` make it a bad release. Undo returns the
    service to the revision it ran before and forgets the release's traffic metrics."""
    baseline_version = sandbox.api_health()["version"]
    baseline = sandbox.aws.service_task_definition()
    if error_rate or latency_ms:
        sandbox.api_admin("/_sandbox/faults", {"versions": {version: {"error_rate": error_rate, "latency_ms": latency_ms}}})
    sandbox.aws.deploy(version)
    if wait:
        _wait_for_version(sandbox, version)

    def restore() -> None:
        sandbox.aws.client("ecs").update_service(cluster=sandbox_aws.CLUSTER, service=sandbox_aws.SERVICE, taskDefinition=baseline)
        _wait_for_version(sandbox, baseline_version)
        sandbox.api_admin("/_sandbox/faults", {"versions": {}})
    return forgetting_traffic(sandbox, since, restore)


def traffic_drop(sandbox: Target, since: datetime, factor: float = 0.2) -> Callable[[], None]:
    """Less traffic than usual: every count of the load balancer scaled down alike, so that ratios (the error
    rate) stay what they were."""
    counts = ("RequestCount", "HTTPCode_Target_2XX_Count", "HTTPCode_Target_5XX_Count", "HTTPCode_ELB_5XX_Count")
    return sandbox.aws.scale_metric("AWS/ApplicationELB", counts, since - timedelta(hours=24), factor)


def certificate_expiring(sandbox: Target, since: datetime, days: float = 3) -> Callable[[], None]:
    """The HTTPS listener serves (and ACM holds) a certificate that expires in ``days``: a renewal nobody did."""
    sandbox.reissue_api_certificate(days=days)
    return sandbox.reissue_api_certificate


def certificate_wrong_host(sandbox: Target, since: datetime, name: str = "entmoot-old.example.net") -> Callable[[], None]:
    """The HTTPS listener serves a certificate for another host name (the wrong one imported)."""
    sandbox.reissue_api_certificate(names=(name,))
    return sandbox.reissue_api_certificate
