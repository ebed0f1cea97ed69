"""Changes the runbook's procedures make to ECS: roll back, scale. Used by remediations and ``entmoot-ops scale``.

Every function here writes through *writable* clients and is bounded: scaling never leaves the configured
``ecs.min_count..ecs.max_count`` (runbook: 3..20), whatever it is asked.
"""

from __future__ import annotations

from dataclasses import dataclass

from entmoot_ops.clients import Clients
from entmoot_ops.errors import OpsError
from entmoot_ops.probes import ecs, measuring
from entmoot_ops import iam
from entmoot_ops.iam import needs


def scaled_count(current: int, *, minimum: int, maximum: int, step: int) -> int:
    """The desired count a scale-out asks for: ``current + step``, within [minimum, maximum] (the runbook's
    "Reached maximum capacity"). An explicit count is not clamped but refused outside the bounds (cli.scale)."""
    return max(minimum, min(maximum, current + step))


@dataclass(frozen=True)
class Revision:
    arn: str
    family: str
    number: int

    @classmethod
    def of(cls, arn: str) -> Revision:
        family, number = arn.rsplit("/", 1)[-1].rsplit(":", 1)
        return cls(arn, family, int(number))

    def __str__(self) -> str:
        return f"{self.family}:{self.number}"


@needs("ecs:ListTaskDefinitions")
def previous_revision(clients: Clients, current: str) -> Revision:
    """The newest ACTIVE revision of the same family older than the one running."""
    running = Revision.of(current)
    with measuring("AWS ECS"):
        paginator = clients.aws("ecs").get_paginator("list_task_definitions")
        for page in paginator.paginate(familyPrefix=running.family, status="ACTIVE", sort="DESC"):
            for arn in page["taskDefinitionArns"]:
                candidate = Revision.of(arn)
                if candidate.family == running.family and candidate.number < running.number:
                    return candidate
    raise OpsError(f"no ACTIVE revision of {running.family} older than {running}: nothing to roll back to")


@needs("ecs:UpdateService", mode="remediate", resources=iam.ECS_SERVICE)
def roll_back(writable: Clients, target: Revision) -> None:
    settings = writable.env.ecs
    with measuring("AWS ECS"):
        writable.aws("ecs").update_service(cluster=settings.cluster, service=settings.service, taskDefinition=target.arn)


@needs("ecs:UpdateService", mode="remediate", resources=iam.ECS_SERVICE)
def set_desired_count(writable: Clients, count: int) -> None:
    settings = writable.env.ecs
    if not settings.min_count <= count <= settings.max_count:
        raise OpsError(f"desired count {count} is outside {settings.min_count}..{settings.max_count}: refused")
    with measuring("AWS ECS"):
        writable.aws("ecs").update_service(cluster=settings.cluster, service=settings.service, desiredCount=count)


def wait_stable(readonly: Clients) -> ecs.Wait:
    deploy = readonly.env.deploy
    return ecs.wait_until_stable(readonly, deploy.rollout_timeout_seconds, deploy.poll_seconds)
