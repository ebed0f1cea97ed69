"""ECS service and deployment state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from entmoot_ops.clients import Clients
from entmoot_ops.errors import DependencyError
from entmoot_ops.probes import measuring


@dataclass(frozen=True)
class Deployment:
    id: str
    status: str  # PRIMARY, ACTIVE, INACTIVE
    rollout_state: str | None  # COMPLETED, IN_PROGRESS, FAILED
    rollout_reason: str | None
    task_definition: str
    desired: int
    running: int
    pending: int
    failed_tasks: int
    created_at: datetime | None


@dataclass(frozen=True)
class ServiceState:
    cluster: str
    service: str
    status: str
    desired: int
    running: int
    pending: int
    task_definition: str
    deployments: tuple[Deployment, ...]

    @property
    def primary(self) -> tuple[Deployment, ...]:
        return tuple(d for d in self.deployments if d.status == "PRIMARY")


def service_state(clients: Clients) -> ServiceState:
    cluster, service = clients.env.ecs.cluster, clients.env.ecs.service
    with measuring("AWS ECS"):
        answer = clients.aws("ecs").describe_services(cluster=cluster, services=[service])
    if not answer.get("services"):
        reasons = "; ".join(f"{f.get('arn')}: {f.get('reason')}" for f in answer.get("failures", []))
        raise DependencyError("AWS ECS", f"service {service} not found in cluster {cluster} ({reasons or 'no failure given'})")
    raw = answer["services"][0]
    return ServiceState(
        cluster=cluster,
        service=service,
        status=raw["status"],
        desired=raw["desiredCount"],
        running=raw["runningCount"],
        pending=raw["pendingCount"],
        task_definition=raw.get("taskDefinition", ""),
        deployments=tuple(
            Deployment(
                id=d["id"],
                status=d["status"],
                rollout_state=d.get("rolloutState"),
                rollout_reason=d.get("rolloutStateReason"),
                task_definition=d.get("taskDefinition", ""),
                desired=d.get("desiredCount", 0),
                running=d.get("runningCount", 0),
                pending=d.get("pendingCount", 0),
                failed_tasks=d.get("failedTasks", 0),
                created_at=d.get("createdAt"),
            )
            for d in raw.get("deployments", [])
        ),
    )
