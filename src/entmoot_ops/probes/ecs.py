"""ECS service and deployment state."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from entmoot_ops.clients import Clients
from entmoot_ops.errors import DependencyError
from entmoot_ops.probes import cloudwatch, measuring
from entmoot_ops.progress import Progress
from entmoot_ops import iam
from entmoot_ops.iam import needs


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

    @property
    def stable(self) -> bool:
        """One PRIMARY deployment, rolled out, every task running, none failed."""
        if len(self.deployments) != 1 or len(self.primary) != 1:
            return False
        primary = self.primary[0]
        return (primary.rollout_state == "COMPLETED" and primary.failed_tasks == 0 and self.pending == 0
                and self.running == self.desired == primary.running == primary.desired)

    def describe(self) -> str:
        return "; ".join(f"{d.status} {d.task_definition.rsplit('/', 1)[-1]} {d.rollout_state or '-'} "
                         f"running {d.running}/{d.desired} pending {d.pending} failed {d.failed_tasks}" for d in self.deployments)


def service_state(clients: Clients) -> ServiceState:
    """The ECS service as the run's checks share it: the checks measuring at once ask ECS once (a throttled or
    frozen API is then waited on once, not by each of them); a re-check after a remediation asks anew, as a poll does."""
    return clients.remember("ecs.service", lambda: _service_state(clients))


@needs("ecs:DescribeServices", resources=iam.ECS_SERVICE)
def _service_state(clients: Clients) -> ServiceState:
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


@dataclass(frozen=True)
class Wait:
    state: ServiceState
    waited_seconds: float


def wait_until_stable(clients: Clients, timeout_seconds: float, poll_seconds: float, *, first: ServiceState | None = None) -> Wait:
    """Poll the service until it is stable or the deadline passes; the last state is returned either way. Each poll
    asks ECS anew (after a write, a reading from before it would be stale); ``first``: a reading to start from."""
    started = time.monotonic()
    progress = Progress(f"waiting for {clients.env.ecs.service} to be stable (deadline {timeout_seconds:g} s)")
    state = first or _service_state(clients)
    while True:
        waited = time.monotonic() - started
        if state.stable or waited + poll_seconds > timeout_seconds:
            return Wait(state, round(waited, 1))
        progress(state.describe())
        time.sleep(poll_seconds)
        state = _service_state(clients)


@dataclass(frozen=True)
class Release:
    task_definition: str
    image: str
    tag: str | None
    in_registry: bool | None  # None: the image is not in this account's ECR, so the suite cannot look


@needs("ecs:DescribeTaskDefinition")
@needs("ecr:DescribeImages", resources=iam.ECR_REPOSITORIES)
def release(clients: Clients, task_definition: str) -> Release:
    """The image a task definition runs, and whether that tag exists in ECR."""
    with measuring("AWS ECS"):
        definition = clients.aws("ecs").describe_task_definition(taskDefinition=task_definition)["taskDefinition"]
    image = definition["containerDefinitions"][0]["image"]
    repository, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "")
    if ".dkr.ecr." not in repository:
        return Release(task_definition, image, tag or None, None)
    registry, _, name = repository.partition("/")
    with measuring("AWS ECR"):
        try:
            found = clients.aws("ecr").describe_images(registryId=registry.split(".")[0], repositoryName=name,
                                                       imageIds=[{"imageTag": tag}])["imageDetails"]
        except clients.aws("ecr").exceptions.ImageNotFoundException:
            found = []
    return Release(task_definition, image, tag or None, bool(found))


@dataclass(frozen=True)
class Utilisation:
    """The service's CPU and memory (AWS/ECS, averaged over its tasks) in the latest complete period of a window
    that holds data (see Series.latest_period): Fargate has no container instances to describe, so CloudWatch is
    the source."""

    window: str
    cpu_percent: float | None
    memory_percent: float | None
    cpu_period: str | None = None  # which period was judged
    memory_period: str | None = None


def utilisation(clients: Clients, window: cloudwatch.Window) -> Utilisation:
    dims = {"ClusterName": clients.env.ecs.cluster, "ServiceName": clients.env.ecs.service}
    cpu, memory = cloudwatch.many_series(clients, "AWS/ECS", [("CPUUtilization", dims), ("MemoryUtilization", dims)], "Average", window)

    cpu_read, memory_read = (series.latest_period(window.period_seconds) for series in (cpu, memory))
    return Utilisation(window=window.describe(), cpu_percent=cpu_read and cpu_read.value,
                       memory_percent=memory_read and memory_read.value, cpu_period=cpu_read and cpu_read.describe(),
                       memory_period=memory_read and memory_read.describe())


@needs("ecs:DescribeTaskDefinition")
def container_environment(clients: Clients) -> dict[str, str]:
    """The environment of the service's PRIMARY task definition (its containers' variables, merged)."""
    state = service_state(clients)
    arn = state.primary[0].task_definition if state.primary else state.task_definition
    with measuring("AWS ECS"):
        definition = clients.aws("ecs").describe_task_definition(taskDefinition=arn)["taskDefinition"]
    return {v["name"]: v["value"] for c in definition.get("containerDefinitions", []) for v in c.get("environment", [])}
