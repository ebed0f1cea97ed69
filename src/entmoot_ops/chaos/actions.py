"""Fault actions: what an experiment's method does. Each one writes, is audited, and returns its rollback.

On the sandbox, a fault of the sandbox (killed or frozen servers, a paused replica, filled storage, cache
pressure, an emptied cache). On AWS, AWS's own fault APIs: ECS StopTask, RDS reboot with failover,
ElastiCache TestFailover and AWS FIS experiment templates; the sandbox serves these too (its AWS answers them
and the fault happens to its real servers), so that an AWS experiment can be tried there first.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import Field

from entmoot_ops.clients import Clients
from entmoot_ops.config import Environment, Ratio, Strict
from entmoot_ops.errors import ConfigError, OpsError
from entmoot_ops.probes import measuring
from entmoot_ops.remediation import AuditLog
from entmoot_ops import iam
from entmoot_ops.iam import needs

Rollback = Callable[[], None]


@dataclass
class ActionContext:
    env: Environment
    readonly: Clients
    writable: Clients
    audit: AuditLog
    experiment: str
    sandbox: Any = None  # the SandboxHandle of a sandbox environment; sandbox faults need it
    # CloudWatch alarms whose ALARM stops the experiment: its own, and those of the FIS templates it starts.
    stop_alarms: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Action:
    name: str
    platform: str  # "sandbox" or "aws"
    describe: Callable[[dict], str]
    start: Callable[[ActionContext, dict], Rollback | None]  # None: nothing to undo (recovery proves the rest)
    params: type[Strict]  # what an experiment file may give it, validated as strictly as an environment file
    touches_primary: Callable[[dict], bool] = lambda params: False


# ---------------------------------------------------------------------------------------- parameters
Component = Literal["redis", "primary", "replica", "api"]
Dependency = Literal["redis", "primary"]


class NoParams(Strict):
    pass


class ComponentParams(Strict):
    component: Component


class DelayParams(Strict):
    dependency: Dependency
    ms: Annotated[float, Field(gt=0, le=60_000)] = 1500


class DependencyParams(Strict):
    dependency: Dependency


class StorageParams(Strict):
    free_ratio: Ratio = 0.05


class ErrorsParams(Strict):
    rate: Ratio = 0.5


class TasksParams(Strict):
    fraction: Annotated[float, Field(gt=0, le=1)] = 0.34


class RebootParams(Strict):
    failover: bool = True


class FailoverParams(Strict):
    node_group: str | None = None


class FisParams(Strict):
    template: str | None = None  # an FIS template's id or Name tag; else chaos.fis_templates names it per experiment


def _sandbox_fault(fault: str, **fixed: Any) -> Callable[[ActionContext, dict], Rollback]:
    def start(ctx: ActionContext, params: dict) -> Rollback:
        if ctx.sandbox is None:
            raise ConfigError(f"{ctx.env.name} is not a sandbox: the fault {fault} exists only there")
        ctx.sandbox.inject(fault, **fixed, **params)
        return lambda: ctx.sandbox.undo(fault)
    return start


def _on_primary(params: dict) -> bool:
    return params.get("component") == "primary"


# ------------------------------------------------------------------------------------------------- AWS
@needs("ecs:ListTasks", mode="chaos")
@needs("ecs:StopTask", mode="chaos", resources=iam.ECS_TASKS)
def _stop_tasks(ctx: ActionContext, params: dict) -> None:
    """StopTask of a fraction of the service's running tasks, never above chaos.max_task_fraction."""
    ecs, limit = ctx.env.ecs, ctx.env.chaos.max_task_fraction
    fraction = float(params.get("fraction", limit))
    with measuring("AWS ECS"):
        tasks = ctx.readonly.aws("ecs").list_tasks(cluster=ecs.cluster, serviceName=ecs.service, desiredStatus="RUNNING")["taskArns"]
    count = max(1, math.floor(fraction * len(tasks)))
    if not tasks:
        raise OpsError(f"{ecs.service} has no running task to stop")
    if fraction > limit or count / len(tasks) > limit:
        raise ConfigError(f"stopping {count} of {len(tasks)} tasks ({count / len(tasks):.0%}) exceeds chaos.max_task_fraction "
                          f"{limit:.0%} of {ctx.env.name}", fix="stop fewer tasks, or raise max_task_fraction in the TOML")
    for arn in tasks[:count]:
        with measuring("AWS ECS"):
            ctx.writable.aws("ecs").stop_task(cluster=ecs.cluster, task=arn, reason=f"entmoot-ops chaos {ctx.experiment}")
    return None  # ECS's scheduler replaces stopped tasks: there is nothing to undo


@needs("rds:DescribeDBInstances", "rds:RebootDBInstance", mode="chaos", resources=iam.DB_INSTANCES)
def _reboot_database(ctx: ActionContext, params: dict) -> None:
    instance = ctx.env.rds.instance
    with measuring("AWS RDS"):
        found = ctx.readonly.aws("rds").describe_db_instances(DBInstanceIdentifier=instance)["DBInstances"][0]
    failover = bool(params.get("failover", True))
    if failover and not found.get("MultiAZ"):
        raise ConfigError(f"{instance} is not Multi-AZ: a reboot with failover is impossible", fix="set failover = false")
    with measuring("AWS RDS"):
        ctx.writable.aws("rds").reboot_db_instance(DBInstanceIdentifier=instance, ForceFailover=failover)
    return None  # the instance comes back by itself; recovery waits for it


@needs("elasticache:DescribeReplicationGroups", "elasticache:TestFailover", mode="chaos", resources=iam.REPLICATION_GROUP)
def _cache_failover(ctx: ActionContext, params: dict) -> None:
    group = ctx.env.redis.replication_group
    if not group:
        raise ConfigError(f"redis.replication_group is not set for {ctx.env.name}: no replication group to fail over")
    with measuring("AWS ElastiCache"):
        found = ctx.readonly.aws("elasticache").describe_replication_groups(ReplicationGroupId=group)["ReplicationGroups"][0]
        node_group = params.get("node_group") or found["NodeGroups"][0]["NodeGroupId"]
        ctx.writable.aws("elasticache").test_failover(ReplicationGroupId=group, NodeGroupId=node_group)
    return None


FIS_ACTIVE = ("pending", "initiating", "running")
FIS_START_SECONDS = 30


@needs("fis:ListExperimentTemplates", mode="chaos")
def fis_template_id(clients: Clients, wanted: str) -> str:
    """A template by its id, or by its Name tag."""
    with measuring("AWS FIS"):
        listed = clients.aws("fis").list_experiment_templates(maxResults=100)["experimentTemplates"]
    for template in listed:
        if wanted in (template["id"], (template.get("tags") or {}).get("Name")):
            return template["id"]
    raise ConfigError(f"no FIS experiment template {wanted!r} (by id or Name tag)", fix="name one in chaos.fis_templates")


@needs("fis:GetExperimentTemplate", mode="chaos", resources=iam.FIS_TEMPLATES)
def fis_template(clients: Clients, template_id: str) -> dict[str, Any]:
    with measuring("AWS FIS"):
        return clients.aws("fis").get_experiment_template(id=template_id)["experimentTemplate"]


def alarm_names(template: dict[str, Any]) -> list[str]:
    """The CloudWatch alarms among a template's stop conditions (their ARNs end in ``:alarm:NAME``)."""
    return [condition["value"].rsplit(":alarm:", 1)[-1] for condition in template.get("stopConditions") or []
            if condition.get("source") == "aws:cloudwatch:alarm" and condition.get("value")]


@needs("fis:StartExperiment", "fis:TagResource", mode="chaos", resources=iam.FIS_TEMPLATES)
@needs("fis:GetExperiment", "fis:StopExperiment", mode="chaos", resources=iam.FIS_EXPERIMENTS)
def _fis_experiment(ctx: ActionContext, params: dict) -> Rollback:
    """Start an FIS template, wait until it runs; the rollback stops it if it still runs. The template's alarm stop
    conditions join the experiment's own: FIS stops its actions on them, and the runner rolls back the rest."""
    wanted = ctx.env.chaos.fis_templates.get(ctx.experiment) or params.get("template")
    if not wanted:
        raise ConfigError(f"chaos.fis_templates of {ctx.env.name} names no template for {ctx.experiment}")
    template = fis_template(ctx.readonly, fis_template_id(ctx.readonly, wanted))
    acting = sorted({a.get("actionId", "") for a in (template.get("actions") or {}).values()})
    if any(action.startswith("aws:rds:") for action in acting) and not ctx.env.chaos.primary_allowed:
        raise ConfigError(f"FIS template {wanted} acts on RDS ({', '.join(acting)}); chaos.primary_allowed is not true for "
                          f"{ctx.env.name}", fix="set [chaos] primary_allowed = true to allow it")
    ctx.stop_alarms.extend(name for name in alarm_names(template) if name not in ctx.stop_alarms)
    fis = ctx.writable.aws("fis")
    with measuring("AWS FIS"):
        started = fis.start_experiment(experimentTemplateId=template["id"], clientToken=str(uuid.uuid4()),
                                       tags={"entmoot-ops": ctx.experiment})["experiment"]

    def stop() -> None:
        """Stop it if it still runs, and wait until FIS says it has ended: its faults are over then."""
        with measuring("AWS FIS"):
            status = fis.get_experiment(id=started["id"])["experiment"]["state"]["status"]
            if status in FIS_ACTIVE:
                fis.stop_experiment(id=started["id"])
        deadline = time.monotonic() + FIS_START_SECONDS
        while status in (*FIS_ACTIVE, "stopping") and time.monotonic() < deadline:
            time.sleep(0.5)
            with measuring("AWS FIS"):
                status = fis.get_experiment(id=started["id"])["experiment"]["state"]["status"]
        if status in (*FIS_ACTIVE, "stopping"):
            raise OpsError(f"FIS experiment {started['id']} is still {status} {FIS_START_SECONDS} s after StopExperiment")

    deadline = time.monotonic() + FIS_START_SECONDS
    state = started["state"]
    while state["status"] in ("pending", "initiating") and time.monotonic() < deadline:
        time.sleep(1)
        with measuring("AWS FIS"):
            state = fis.get_experiment(id=started["id"])["experiment"]["state"]
    if state["status"] not in ("running", "completed"):
        stop()
        raise OpsError(f"FIS experiment {started['id']} of template {wanted} is {state['status']}: {state.get('reason')}")
    return stop


def _join(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(params.items()))


ACTIONS: dict[str, Action] = {a.name: a for a in (
    Action("kill", "sandbox", lambda p: f"kill the {p['component']} server", _sandbox_fault("component_killed"), ComponentParams,
           _on_primary),
    Action("freeze", "sandbox", lambda p: f"freeze (SIGSTOP) the {p['component']} server", _sandbox_fault("component_frozen"),
           ComponentParams, _on_primary),
    Action("slow-dependency", "sandbox", lambda p: f"{p['dependency']} answers the API {p.get('ms', 1500):g} ms late (proxy)",
           _sandbox_fault("dependency_latency"), DelayParams, lambda p: p.get("dependency") == "primary"),
    Action("blackhole-dependency", "sandbox", lambda p: f"nothing passes between the API and {p['dependency']} (proxy)",
           _sandbox_fault("dependency_blackhole"), DependencyParams, lambda p: p.get("dependency") == "primary"),
    Action("pause-replica-replay", "sandbox", lambda p: "pause WAL replay on the replica", _sandbox_fault("replica_paused"),
           NoParams),
    Action("fill-rds-storage", "sandbox", lambda p: f"fill RDS storage ({_join(p) or 'to 5% free'})", _sandbox_fault("rds_low_storage"),
           StorageParams, lambda p: True),
    Action("redis-memory-pressure", "sandbox", lambda p: "fill Redis to its maxmemory (evictions)",
           _sandbox_fault("redis_memory_pressure"), NoParams),
    Action("api-errors", "sandbox", lambda p: f"the API answers {float(p.get('rate', 0.5)):.0%} of requests with 5XX",
           _sandbox_fault("api_errors"), ErrorsParams),
    Action("flush-cache", "sandbox", lambda p: "empty the cache (FLUSHALL)", _sandbox_fault("redis_flushed"), NoParams),
    Action("ecs-stop-tasks", "aws", lambda p: f"ECS StopTask of {float(p.get('fraction', 0.34)):.0%} of the service's tasks",
           _stop_tasks, TasksParams),
    Action("rds-reboot", "aws", lambda p: f"RDS reboot{' with failover' if p.get('failover', True) else ''}", _reboot_database,
           RebootParams, lambda p: True),
    Action("elasticache-failover", "aws", lambda p: "ElastiCache TestFailover", _cache_failover, FailoverParams),
    Action("fis-experiment", "aws", lambda p: f"AWS FIS experiment template {p.get('template') or '(chaos.fis_templates)'}",
           _fis_experiment, FisParams),
)}
